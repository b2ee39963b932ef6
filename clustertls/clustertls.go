// Package clustertls is a cluster's credentials: a cluster CA, node and
// client certificates (ECDSA P-256) that carry their holder's identity,
// and TLS 1.3 configurations with mutual authentication for the bootstrap
// and client listeners.
//
// An identity is a URI SAN, mu://node/<id> or mu://client/<name> (the
// CommonName repeats it for people: mu-node-<id>, mu-client-<name>).
// Membership of the cluster is a certificate chained to its CA; there are
// no host names to check, since nodes dial each other by address: instead
// the dialer checks that the listener's certificate names the node it
// meant to reach, and the listener that the dialer's names the node its
// hello claims to be.
package clustertls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/rdmaconsensus/mu/rdma"
)

// ErrCredentials marks every error about certificates and keys.
var ErrCredentials = errors.New("clustertls")

// Identity is who a certificate speaks for: a node (Node > 0) or a
// client (Client != "").
type Identity struct {
	Node   rdma.NodeID
	Client string
}

// NodeIdentity and ClientIdentity build identities.
func NodeIdentity(id rdma.NodeID) Identity { return Identity{Node: id} }
func ClientIdentity(name string) Identity  { return Identity{Client: name} }

// IsNode reports a node identity.
func (i Identity) IsNode() bool { return i.Node != 0 }

func (i Identity) String() string {
	if i.IsNode() {
		return fmt.Sprintf("node %d", i.Node)
	}
	return fmt.Sprintf("client %q", i.Client)
}

var clientName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (i Identity) validate() error {
	switch {
	case i.IsNode() && i.Client != "":
		return fmt.Errorf("%w: identity is both node %d and client %q", ErrCredentials, i.Node, i.Client)
	case !i.IsNode() && !clientName.MatchString(i.Client):
		return fmt.Errorf("%w: client name %q: want 1-63 of letters, digits, '.', '_', '-'", ErrCredentials, i.Client)
	}
	return nil
}

func (i Identity) uri() *url.URL {
	if i.IsNode() {
		return &url.URL{Scheme: "mu", Host: "node", Path: "/" + strconv.Itoa(int(i.Node))}
	}
	return &url.URL{Scheme: "mu", Host: "client", Path: "/" + i.Client}
}

func (i Identity) commonName() string {
	if i.IsNode() {
		return fmt.Sprintf("mu-node-%d", i.Node)
	}
	return "mu-client-" + i.Client
}

// NodeServerName is a DNS name every node certificate carries, besides
// mu-node-N: a standard TLS client (a Prometheus scraper, whose
// server_name is one per job) verifies "a node of this cluster" with it.
// mu's own peers check the identity in the URI SAN instead.
const NodeServerName = "mu-node"

// dnsNames are the DNS SANs of a certificate: a node's names for standard
// TLS clients; none for a client.
func (i Identity) dnsNames() []string {
	if !i.IsNode() {
		return nil
	}
	return []string{i.commonName(), NodeServerName}
}

// IdentityOf reads the identity a certificate carries: exactly one mu://
// URI SAN.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		if u.Scheme != "mu" {
			continue
		}
		name := ""
		if len(u.Path) > 1 {
			name = u.Path[1:]
		}
		switch u.Host {
		case "node":
			n, err := strconv.ParseUint(name, 10, 16)
			if err != nil || n == 0 {
				return Identity{}, fmt.Errorf("%w: certificate names node %q", ErrCredentials, name)
			}
			found = append(found, NodeIdentity(rdma.NodeID(n)))
		case "client":
			id := ClientIdentity(name)
			if err := id.validate(); err != nil {
				return Identity{}, err
			}
			found = append(found, id)
		default:
			return Identity{}, fmt.Errorf("%w: certificate carries unknown identity %q", ErrCredentials, u.String())
		}
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("%w: certificate carries %d mu:// identities, want 1", ErrCredentials, len(found))
	}
	return found[0], nil
}

// PEM pairs.
type PEM struct{ Cert, Key []byte }

// NewCA makes a cluster CA: a self-signed ECDSA P-256 certificate.
func NewCA(name string, validity time.Duration) (PEM, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mu cluster CA " + name},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return PEM{}, err
	}
	return encodePair(der, key)
}

// Issue signs a certificate for id with the CA.
func Issue(ca PEM, id Identity, validity time.Duration) (PEM, error) {
	if err := id.validate(); err != nil {
		return PEM{}, err
	}
	caPair, err := tls.X509KeyPair(ca.Cert, ca.Key)
	if err != nil {
		return PEM{}, fmt.Errorf("%w: CA: %v", ErrCredentials, err)
	}
	caCert, err := x509.ParseCertificate(caPair.Certificate[0])
	if err != nil {
		return PEM{}, fmt.Errorf("%w: CA: %v", ErrCredentials, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, err
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter // a certificate cannot outlive its CA
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if id.IsNode() {
		// A node listens and dials.
		usage = append(usage, x509.ExtKeyUsageServerAuth)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: id.commonName()},
		URIs:         []*url.URL{id.uri()},
		DNSNames:     id.dnsNames(),
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caPair.PrivateKey)
	if err != nil {
		return PEM{}, err
	}
	return encodePair(der, key)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

func encodePair(der []byte, key *ecdsa.PrivateKey) (PEM, error) {
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return PEM{}, err
	}
	return PEM{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}),
	}, nil
}

// Credentials are a holder's certificate and key and the cluster CA.
type Credentials struct {
	Self     Identity
	cert     tls.Certificate
	leaf     *x509.Certificate
	roots    *x509.CertPool
	NotAfter time.Time
}

// LoadFiles reads the CA certificate, the holder's certificate and key.
func LoadFiles(caPath, certPath, keyPath string) (*Credentials, error) {
	ca, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	cert, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	return Load(ca, PEM{Cert: cert, Key: key})
}

// IssueCredentials issues a certificate for id under ca and loads it: the
// in-memory credentials of a process that holds the CA (tests, benchmarks,
// a throwaway local group).
func IssueCredentials(ca PEM, id Identity, validity time.Duration) (*Credentials, error) {
	p, err := Issue(ca, id, validity)
	if err != nil {
		return nil, err
	}
	return Load(ca.Cert, p)
}

// Load parses credentials and checks that the certificate chains to the
// CA now and carries an identity.
func Load(caPEM []byte, holder PEM) (*Credentials, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%w: CA file holds no PEM certificate", ErrCredentials)
	}
	pair, err := tls.X509KeyPair(holder.Cert, holder.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate and key: %v", ErrCredentials, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %v", ErrCredentials, err)
	}
	pair.Leaf = leaf
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%w: certificate does not verify against the CA: %v", ErrCredentials, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, err
	}
	return &Credentials{Self: id, cert: pair, leaf: leaf, roots: roots, NotAfter: leaf.NotAfter}, nil
}

// verifyPeer checks a peer's chain against the CA for usage and returns
// its identity.
func (c *Credentials) verifyPeer(rawCerts [][]byte, usage x509.ExtKeyUsage) (Identity, error) {
	if len(rawCerts) == 0 {
		return Identity{}, fmt.Errorf("%w: peer sent no certificate", ErrCredentials)
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: peer certificate: %v", ErrCredentials, err)
		}
		certs[i] = cert
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return Identity{}, fmt.Errorf("%w: peer certificate: %v", ErrCredentials, err)
	}
	return IdentityOf(certs[0])
}

func (c *Credentials) base() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.cert},
	}
}

// ServerConfig is for a listener: the peer must present a certificate of
// the cluster; allow, if not nil, decides which identities may connect.
func (c *Credentials) ServerConfig(allow func(Identity) error) *tls.Config {
	cfg := c.base()
	cfg.ClientAuth = tls.RequireAnyClientCert // verified below, against the cluster CA only
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		id, err := c.verifyPeer(raw, x509.ExtKeyUsageClientAuth)
		if err != nil {
			return err
		}
		if allow != nil {
			return allow(id)
		}
		return nil
	}
	return cfg
}

// ClientConfig is for dialing: the listener must present a certificate of
// the cluster naming want (any node when want is zero).
func (c *Credentials) ClientConfig(want rdma.NodeID) *tls.Config {
	cfg := c.base()
	// Chain and identity are checked here instead of against a host name:
	// peers are dialed by address and certificates name nodes.
	cfg.InsecureSkipVerify = true
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		id, err := c.verifyPeer(raw, x509.ExtKeyUsageServerAuth)
		if err != nil {
			return err
		}
		if !id.IsNode() || want != 0 && id.Node != want {
			return fmt.Errorf("%w: listener is %v, not the node dialed", ErrCredentials, id)
		}
		return nil
	}
	return cfg
}

// PeerIdentity is the identity of a TLS connection's verified peer.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, fmt.Errorf("%w: no peer certificate", ErrCredentials)
	}
	return IdentityOf(cs.PeerCertificates[0])
}

// PeerNode is PeerIdentity for a peer that must be a node.
func PeerNode(cs tls.ConnectionState) (rdma.NodeID, error) {
	id, err := PeerIdentity(cs)
	if err != nil {
		return 0, err
	}
	if !id.IsNode() {
		return 0, fmt.Errorf("%w: peer is %v, not a node", ErrCredentials, id)
	}
	return id.Node, nil
}

// OnlyNodes admits node certificates only (the bootstrap listener).
func OnlyNodes(id Identity) error {
	if !id.IsNode() {
		return fmt.Errorf("%w: %v may not connect here", ErrCredentials, id)
	}
	return nil
}
