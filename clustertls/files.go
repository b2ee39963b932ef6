package clustertls

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File names in a credentials directory.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// Files returns the certificate and key file names for id in dir.
func Files(dir string, id Identity) (cert, key string) {
	base := "client-" + id.Client
	if id.IsNode() {
		base = fmt.Sprintf("node%d", id.Node)
	}
	return filepath.Join(dir, base+".pem"), filepath.Join(dir, base+"-key.pem")
}

// InitDir makes a cluster CA in dir. It refuses to replace an existing CA
// key: every certificate of the cluster hangs on it.
func InitDir(dir, name string, validity time.Duration) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		return fmt.Errorf("%w: %s already exists; a new CA would orphan every certificate it signed", ErrCredentials, filepath.Join(dir, CAKeyFile))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	ca, err := NewCA(name, validity)
	if err != nil {
		return err
	}
	return writePair(filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile), ca)
}

// IssueInDir signs a certificate for id with the CA in dir and writes it
// beside it; it returns the two paths. An existing pair for id is
// replaced (that is how credentials are rotated).
func IssueInDir(dir string, id Identity, validity time.Duration) (certPath, keyPath string, err error) {
	caCert, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return "", "", fmt.Errorf("%w: %v (run `mu certs init` first)", ErrCredentials, err)
	}
	caKey, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	p, err := Issue(PEM{Cert: caCert, Key: caKey}, id, validity)
	if err != nil {
		return "", "", err
	}
	certPath, keyPath = Files(dir, id)
	return certPath, keyPath, writePair(certPath, keyPath, p)
}

// writePair writes the key first, readable by its owner only, each file
// through a rename so a reader never sees half of one.
func writePair(certPath, keyPath string, p PEM) error {
	if err := writeFile(keyPath, p.Key, 0o600); err != nil {
		return err
	}
	return writeFile(certPath, p.Cert, 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
