package rdma

// ProtocolVersion is the bootstrap handshake version. Peers with a different
// version refuse each other.
const ProtocolVersion uint16 = 1

// Endpoint is what one side of a connection tells the other during bootstrap:
// enough to move a queue pair to RTR and to address the sender's region.
type Endpoint struct {
	Version   uint16
	ClusterID uint64
	Node      NodeID
	Plane     Plane
	GID       [16]byte // RoCE v2 GID of the sender's port
	QPN       uint32   // sender's queue pair number (24 bits)
	PSN       uint32   // sender's initial packet sequence number (24 bits)
	Addr      uint64   // sender's region base address
	RKey      uint32   // sender's region remote key
	Length    uint64   // sender's region length in bytes
}
