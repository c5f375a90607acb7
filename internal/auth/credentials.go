package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CredentialsFile is the name of the credentials file inside the data directory.
const CredentialsFile = "credentials.json"

// Credentials are one installation's secrets: an AWS-style key pair for SigV4
// clients (AWS CLI, boto3, aws-sdk-go-v2) and a bearer token for Owl's own CLI.
// Never log a Credentials value.
type Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	Token           string `json:"token"`
	// NATSPassword is the password of user "owl" on the NATS listener
	// (owl serve --nats-listen), for NATS clients outside Owl.
	NATSPassword string `json:"nats_password,omitempty"`
}

// LoadOrCreate returns the installation's credentials, kept in
// <dataDir>/credentials.json (mode 0600). Each field comes from fromEnv when set
// there, else from the existing file, else it is generated. The result is
// written back (atomically) whenever it differs from the file, so client
// commands on the same machine can find it with ReadFile.
func LoadOrCreate(dataDir string, fromEnv Credentials) (Credentials, error) {
	if dataDir == "" {
		return Credentials{}, errors.New("loading credentials: data directory is empty")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return Credentials{}, fmt.Errorf("creating data directory %q: %w", dataDir, err)
	}
	path := filepath.Join(dataDir, CredentialsFile)
	stored, err := readCredentials(path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Credentials{}, err
	}

	c := stored
	pick(&c.AccessKeyID, fromEnv.AccessKeyID, newAccessKeyID)
	pick(&c.SecretAccessKey, fromEnv.SecretAccessKey, newSecretAccessKey)
	pick(&c.Token, fromEnv.Token, newToken)
	pick(&c.NATSPassword, fromEnv.NATSPassword, newToken)

	if exists && c == stored {
		// Tighten a file someone loosened by hand; the content is current.
		if err := os.Chmod(path, 0o600); err != nil {
			return Credentials{}, fmt.Errorf("restricting credentials file %q: %w", path, err)
		}
		return c, nil
	}
	if err := writeCredentials(dataDir, path, c); err != nil {
		return Credentials{}, err
	}
	return c, nil
}

// ReadFile reads the credentials a server stored in dataDir, for client
// commands running on the same machine.
func ReadFile(dataDir string) (Credentials, error) {
	path := filepath.Join(dataDir, CredentialsFile)
	c, err := readCredentials(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Credentials{}, fmt.Errorf("no credentials file at %q: start the Owl server with this data directory once to create it: %w", path, err)
	}
	if err != nil {
		return Credentials{}, err
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Token == "" {
		return Credentials{}, fmt.Errorf("credentials file %q is incomplete: access_key_id, secret_access_key and token are all required", path)
	}
	return c, nil
}

// pick sets *field to env when env is set, and generates a value when neither
// env nor the file had one.
func pick(field *string, env string, generate func() string) {
	switch {
	case env != "":
		*field = env
	case *field == "":
		*field = generate()
	}
}

func readCredentials(path string) (Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("reading credentials file: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		// The JSON error never quotes field values, so no secret leaks here.
		return Credentials{}, fmt.Errorf("parsing credentials file %q: %w", path, err)
	}
	return c, nil
}

// writeCredentials replaces path atomically: a reader sees the old file or the
// new one, never a partial write.
func writeCredentials(dir, path string, c Credentials) (err error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding credentials: %w", err)
	}
	data = append(data, '\n')

	f, err := os.CreateTemp(dir, ".credentials-*.tmp") // CreateTemp uses mode 0600
	if err != nil {
		return fmt.Errorf("creating temporary credentials file in %q: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("restricting %q: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %q: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %q: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %q: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing credentials file %q: %w", path, err)
	}
	// Make the rename durable; failure here does not undo a completed rename.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// newAccessKeyID returns "AKIA" and 16 characters from [A-Z2-7], the shape of
// an AWS access key id, so tools that sanity-check the format accept it.
func newAccessKeyID() string {
	return "AKIA" + rand.Text()[:16]
}

// newSecretAccessKey returns 40 base64 characters (240 random bits), the shape
// of an AWS secret access key.
func newSecretAccessKey() string {
	return base64.StdEncoding.EncodeToString(randomBytes(30))
}

// newToken returns "owl_" and 43 URL-safe characters (256 random bits).
func newToken() string {
	return "owl_" + base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails; it crashes the program instead
	return b
}

// SameAPI reports whether c and o let the same clients in: the same key
// pair and token (the NATS listener's password is each node's own).
func (c Credentials) SameAPI(o Credentials) bool {
	return c.AccessKeyID == o.AccessKeyID && c.SecretAccessKey == o.SecretAccessKey && c.Token == o.Token
}

// Adopt replaces the API credentials stored in dataDir with those of c,
// keeping the file's NATS password: a node that joins a cluster takes the
// cluster's.
func Adopt(dataDir string, c Credentials) (Credentials, error) {
	path := filepath.Join(dataDir, CredentialsFile)
	cur, err := readCredentials(path)
	if err != nil {
		return Credentials{}, err
	}
	cur.AccessKeyID, cur.SecretAccessKey, cur.Token = c.AccessKeyID, c.SecretAccessKey, c.Token
	if err := writeCredentials(dataDir, path, cur); err != nil {
		return Credentials{}, err
	}
	return cur, nil
}

// Exists reports whether dataDir holds a credentials file.
func Exists(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, CredentialsFile))
	return err == nil
}
