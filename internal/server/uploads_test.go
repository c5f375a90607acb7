package server_test

// Code uploads of up to 50 MB (70 MB of base64 in JSON) are streamed: the
// zip is decoded into an unlinked file in <data>/uploads as the body
// arrives, never held in memory, and the file is gone (closed) on every
// path: success, a refused signature, a client that disconnects.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/config"
)

// openUploads lists the spooled upload files the in-process server has
// open, and any file left in its upload directory.
func openUploads(t testing.TB, dataDir string) []string {
	t.Helper()
	dir := filepath.Join(dataDir, "uploads")
	var open []string
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, dir+"/") {
			open = append(open, target)
		}
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("the upload directory: %v", err)
	}
	for _, e := range left {
		open = append(open, "left: "+e.Name())
	}
	return open
}

// noUploadsLeft waits until no spooled upload is open or left.
func noUploadsLeft(t testing.TB, dataDir string) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		if u := openUploads(t, dataDir); len(u) > 0 {
			return fmt.Errorf("spooled uploads still open: %v", u)
		}
		return nil
	})
}

// signedRequest is a CreateFunction request carrying body, SigV4-signed
// as if its body hashed to signedHash; declared adds X-Amz-Content-Sha256.
func signedRequest(t testing.TB, url string, body []byte, signedHash string, declared bool) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/2015-03-31/functions", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if declared {
		req.Header.Set("X-Amz-Content-Sha256", signedHash)
	}
	creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, signedHash, "lambda", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestStreamedUploads(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	// The body budget is smaller than one large upload's body.
	ts := startServer(t, dataDir, func(c *config.Config) { c.MaxBodyMemoryMB = 32 })

	t.Run("a 45 MB deploy with a 32 MB body budget", func(t *testing.T) {
		ts := ts.as(t)
		zip := bigZip(t, 45<<20, "big")
		if n := base64.StdEncoding.EncodedLen(len(zip)); n < 60<<20 {
			t.Fatalf("the body would be only %d bytes", n)
		}
		// The SDK signs a body hash it does not declare, as the AWS CLI and
		// boto3 do: the whole body is read before it is authenticated.
		out, err := ts.sdk().CreateFunction(context.Background(), &lambda.CreateFunctionInput{
			FunctionName: aws.String("big"), Runtime: types.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
			Role: aws.String("arn:aws:iam::000000000000:role/owl"), Code: &types.FunctionCode{ZipFile: zip},
		})
		if err != nil {
			t.Fatalf("CreateFunction of a 45 MB zip: %v", err)
		}
		sum := sha256.Sum256(zip)
		if aws.ToString(out.CodeSha256) != base64.StdEncoding.EncodeToString(sum[:]) || out.CodeSize != int64(len(zip)) {
			t.Errorf("CodeSha256 %s, CodeSize %d; want the zip's", aws.ToString(out.CodeSha256), out.CodeSize)
		}
		resp, stored := ts.do(http.MethodGet, "/owl/v1/functions/big/code", nil, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(stored, zip) {
			t.Errorf("the stored code: %d, %d bytes, equal %v", resp.StatusCode, len(stored), bytes.Equal(stored, zip))
		}
		noUploadsLeft(t, dataDir)

		// UpdateFunctionCode and PublishLayerVersion stream too.
		zip2 := bigZip(t, 40<<20, "big2")
		if _, err := ts.sdk().UpdateFunctionCode(context.Background(), &lambda.UpdateFunctionCodeInput{
			FunctionName: aws.String("big"), ZipFile: zip2,
		}); err != nil {
			t.Fatalf("UpdateFunctionCode of a 40 MB zip: %v", err)
		}
		if _, err := ts.sdk().PublishLayerVersion(context.Background(), &lambda.PublishLayerVersionInput{
			LayerName: aws.String("big"), Content: &types.LayerVersionContentInput{ZipFile: zip},
		}); err != nil {
			t.Fatalf("PublishLayerVersion of a 45 MB zip: %v", err)
		}
		noUploadsLeft(t, dataDir)
	})

	t.Run("a bad payload hash over a large streamed body", func(t *testing.T) {
		ts := ts.as(t)
		before := ts.functionsSnapshot()
		account, err := ts.sdk().GetAccountSettings(context.Background(), &lambda.GetAccountSettingsInput{})
		if err != nil {
			t.Fatal(err)
		}
		signed := createBodyZip(t, "forged", bigZip(t, 40<<20, "forged"))
		// The same length, valid too, one zip byte apart.
		sent := bytes.Clone(signed)
		i := bytes.Index(sent, []byte(`"ZipFile":"`)) + len(`"ZipFile":"`) + 1<<20
		sent[i] = map[bool]byte{true: 'A', false: 'B'}[sent[i] != 'A']
		for _, declared := range []bool{false, true} {
			req := signedRequest(t, ts.URL, sent, sha256Hex(signed), declared)
			resp, err := testHTTPClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			wantError(t, resp, body.Bytes(), http.StatusForbidden, "InvalidSignatureException", "~")
			if !declared && !strings.Contains(body.String(), "signature") {
				t.Errorf("undeclared hash: %s", body.String())
			}
		}
		// Signed right, it goes through: the refusals were the hash's.
		good := signedRequest(t, ts.URL, signed, sha256Hex(signed), true)
		if resp, err := testHTTPClient.Do(good); err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("the same upload signed right: %v %v", resp.Status, err)
		}
		if _, err := ts.sdk().DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: aws.String("forged")}); err != nil {
			t.Fatal(err)
		}
		if after := ts.functionsSnapshot(); after != before {
			t.Errorf("refused uploads changed the functions:\nbefore:\n%safter:\n%s", before, after)
		}
		eventually(t, 10*time.Second, func() error {
			now, err := ts.sdk().GetAccountSettings(context.Background(), &lambda.GetAccountSettingsInput{})
			if err != nil {
				return err
			}
			if now.AccountUsage.TotalCodeSize != account.AccountUsage.TotalCodeSize {
				return fmt.Errorf("code stored: %d bytes, %d before", now.AccountUsage.TotalCodeSize, account.AccountUsage.TotalCodeSize)
			}
			return nil
		})
		noUploadsLeft(t, dataDir)
	})

	t.Run("a client that disconnects mid-body", func(t *testing.T) {
		ts := ts.as(t)
		body := createBodyZip(t, "gone", bigZip(t, 40<<20, "gone"))
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		head := "POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testToken +
			"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		if _, err := c.Write(append([]byte(head), body[:20<<20]...)); err != nil {
			t.Fatal(err)
		}
		// The zip is being spooled...
		eventually(t, 10*time.Second, func() error {
			if u := openUploads(t, dataDir); len(u) != 1 {
				return fmt.Errorf("spooled uploads: %v, want the one in flight", u)
			}
			return nil
		})
		// ...and the client goes away.
		c.Close()
		noUploadsLeft(t, dataDir)
		if s := ts.functionsSnapshot(); strings.Contains(s, "gone") {
			t.Errorf("a half-sent upload created a function:\n%s", s)
		}
	})
}
