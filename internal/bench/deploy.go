package bench

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/owl-project/owl/internal/client"
)

// DeployRuntime is the runtime benchmark functions are deployed with.
const DeployRuntime = "provided.al2023"

// Deploy makes function name run the code at path: a zip file, or a
// directory holding an executable bootstrap (zipped as is, nothing is
// built). The function is created with DeployRuntime when it does not exist;
// otherwise its code is replaced when it differs. Deploy returns once the
// function is Active and its last update Successful.
func Deploy(ctx context.Context, cfg Config, path string) error {
	zipBytes, err := LoadPackage(path)
	if err != nil {
		return err
	}
	api := client.New(cfg.Endpoint, cfg.Token, client.WithUserAgent("owl-bench"))
	fn, err := api.GetFunction(ctx, cfg.Function)
	var out *client.FunctionConfiguration
	switch {
	case client.IsCode(err, client.CodeResourceNotFound):
		out, err = api.CreateFunction(ctx, &client.CreateFunctionInput{
			FunctionName: cfg.Function,
			Runtime:      DeployRuntime,
			Handler:      "bootstrap",
			Description:  "owl bench hello",
			Code:         client.FunctionCode{ZipFile: zipBytes},
		})
		if err != nil {
			return fmt.Errorf("creating %s: %w", cfg.Function, err)
		}
	case err != nil:
		return fmt.Errorf("deploying %s: %w", cfg.Function, err)
	case fn.Configuration.CodeSha256 == codeSha256(zipBytes):
		out = &fn.Configuration
	default:
		out, err = api.UpdateFunctionCode(ctx, cfg.Function, &client.UpdateFunctionCodeInput{ZipFile: zipBytes})
		if err != nil {
			return fmt.Errorf("updating the code of %s: %w", cfg.Function, err)
		}
	}
	return waitReady(ctx, api, cfg.Function, out)
}

// codeSha256 is a zip's CodeSha256 as Lambda reports it.
func codeSha256(zipBytes []byte) string {
	sum := sha256.Sum256(zipBytes)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// zipEpoch is every entry's modification time, so a directory always
// zips to the same bytes (and the same CodeSha256).
var zipEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// LoadPackage returns the deployment package at path: a zip file as is, or
// a directory zipped in memory (regular files only, modes kept, sorted,
// fixed timestamps). A directory must hold an executable file named
// bootstrap.
func LoadPackage(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if _, err := zip.NewReader(bytes.NewReader(b), int64(len(b))); err != nil {
			return nil, fmt.Errorf("%s: not a zip file or a directory (%v)", path, err)
		}
		return b, nil
	}
	bs, err := os.Stat(filepath.Join(path, "bootstrap"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: no bootstrap in the directory (build the function first, e.g. CGO_ENABLED=0 go build -o %s/bootstrap)", path, path)
	case err != nil:
		return nil, err
	case !bs.Mode().IsRegular() || bs.Mode().Perm()&0o111 == 0:
		return nil, fmt.Errorf("%s: bootstrap must be an executable file", path)
	}
	return zipDir(path)
}

// zipDir zips the regular files under dir.
func zipDir(dir string) ([]byte, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range files {
		if err := addFile(zw, dir, p); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func addFile(zw *zip.Writer, dir, p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return err
	}
	hdr, err := zip.FileInfoHeader(st)
	if err != nil {
		return err
	}
	hdr.Name, hdr.Method, hdr.Modified = filepath.ToSlash(rel), zip.Deflate, zipEpoch
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
