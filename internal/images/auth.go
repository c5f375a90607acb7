package images

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
)

// dockerConfig is the part of a docker-style config.json Owl reads: the
// credentials per registry ("auth" as base64 user:password, or username
// and password, or an identity token). Credential helpers (credsStore,
// credHelpers) are not run.
type dockerConfig struct {
	Auths map[string]authn.AuthConfig `json:"auths"`
}

// loadAuthFile reads a docker-style config.json.
func loadAuthFile(p string) (dockerConfig, error) {
	var c dockerConfig
	b, err := os.ReadFile(p)
	if err != nil {
		return c, fmt.Errorf("images: reading registry credentials: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("images: registry credentials %s: not a docker config.json: %w", p, err)
	}
	return c, nil
}

// keychain gives each registry its credentials from the auth file, read
// at each pull (so an edited file applies without a restart); anonymous
// when there is none.
func (s *Store) keychain() authn.Keychain {
	return fileKeychain{path: s.cfg.AuthFile}
}

type fileKeychain struct{ path string }

// Resolve implements authn.Keychain.
func (k fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if k.path == "" {
		return authn.Anonymous, nil
	}
	c, err := loadAuthFile(k.path)
	if err != nil {
		return nil, err
	}
	reg := r.RegistryStr()
	for _, key := range []string{reg, "https://" + reg, "http://" + reg, "https://" + reg + "/v1/", "https://" + reg + "/v2/"} {
		if a, ok := c.Auths[key]; ok {
			return authn.FromConfig(a), nil
		}
	}
	if reg == "index.docker.io" {
		if a, ok := c.Auths["https://index.docker.io/v1/"]; ok {
			return authn.FromConfig(a), nil
		}
	}
	return authn.Anonymous, nil
}
