package peers

import (
	"context"
	"fmt"
	"time"
)

// cluster is what the shared measurement loop needs from a peer library's
// in-process group; L names a leader (a node handle or an index).
type cluster[L any] interface {
	stableLeader(ctx context.Context) (L, error)
	// propose commits data through leader and returns once it is applied.
	propose(leader L, data []byte, id uint64, timeout time.Duration) error
	// failover isolates the leader, waits for a new one to commit, heals,
	// and returns isolation → commit and isolation → election.
	failover(ctx context.Context, cfg Config, nextID *uint64) (total, elected time.Duration, err error)
}

// measure records commit latency (one proposal in flight, always at the
// leader) and then cfg.Failovers failovers into res.
func measure[L any](ctx context.Context, cfg Config, res *Result, c cluster[L]) (*Result, error) {
	var nextID uint64
	sctx, cancel := context.WithTimeout(ctx, cfg.FailoverDeadline)
	leader, err := c.stableLeader(sctx)
	cancel()
	if err != nil {
		return nil, err
	}
	for i := 0; i < cfg.WarmupProposals+cfg.Proposals; i++ {
		// The sample is what a client sees: from the first attempt until
		// the proposal is applied, including any resend after leadership
		// moved.
		start := time.Now()
		for {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			nextID++
			data := newPayload(cfg.PayloadBytes, nextID)
			if err := c.propose(leader, data, nextID, cfg.ProposalTimeout); err == nil {
				break
			}
			res.Retries++
			sctx, cancel := context.WithTimeout(ctx, cfg.FailoverDeadline)
			leader, err = c.stableLeader(sctx)
			cancel()
			if err != nil {
				return nil, err
			}
		}
		if i >= cfg.WarmupProposals {
			record(res.Commit, time.Since(start))
		}
	}

	for trial := 0; trial < cfg.Failovers; trial++ {
		d, elected, err := c.failover(ctx, cfg, &nextID)
		if err != nil {
			return nil, fmt.Errorf("%s failover %d: %w", res.System, trial, err)
		}
		record(res.Failover, d)
		record(res.Election, elected)
	}
	return res, nil
}
