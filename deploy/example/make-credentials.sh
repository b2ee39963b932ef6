#!/usr/bin/env bash
# Make the three-node example's credentials with `mu certs` (docs/security.md):
# the cluster CA, one certificate per node and one for a client. Run once, on
# a trusted machine; copy ca.pem and nodeN*.pem to node N's /etc/mu/certs and
# keep ca-key.pem offline.
#   deploy/example/make-credentials.sh [DIR] (default ./mu-certs)
set -euo pipefail
mu=${MU:-mu}
dir=${1:-mu-certs}
"$mu" certs init --dir "$dir" --name mu-example
for id in 1 2 3; do
  "$mu" certs issue --dir "$dir" --node "$id"
done
"$mu" certs issue --dir "$dir" --client ops
ls -l "$dir"
