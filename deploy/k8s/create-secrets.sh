#!/usr/bin/env bash
# Creates the two Secrets the manifests reference but never contain, with fresh random
# material generated on this machine:
#   pseudonym-keys   the privacy gateway's HMAC key ring (file pseudonym-keys.json)
#   recsys-database  postgres-password, and the SQLAlchemy URLs of the feature store and the
#                    privacy gateway's budget ledger
# Usage: deploy/k8s/create-secrets.sh [--dry-run] NAMESPACE [DATABASE_HOST]
# Run from the repository root with the project installed (it uses the gateway's own key tool).
# DATABASE_HOST defaults to the in-cluster StatefulSet ("postgres"); give the managed
# database's host name with components/external-postgres. Existing Secrets are left alone:
# rotate keys with `python -m ops.keys rotate` (docs/deploy.md).
# --dry-run prints both Secrets as YAML instead (for kubeseal, SOPS or review) and needs no
# cluster; treat that output as the secret it is.
set -euo pipefail

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then
  dry_run=1
  shift
fi
namespace="${1:?usage: $0 [--dry-run] NAMESPACE [DATABASE_HOST]}"
db_host="${2:-postgres}"
workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT

exists() {
  [[ "${dry_run}" == 0 ]] && kubectl -n "${namespace}" get secret "$1" >/dev/null 2>&1
}

create() {
  if [[ "${dry_run}" == 1 ]]; then
    echo "---"
    kubectl -n "${namespace}" create secret generic "$@" --dry-run=client -o yaml
  else
    kubectl -n "${namespace}" create secret generic "$@"
  fi
}

if exists pseudonym-keys; then
  echo "secret pseudonym-keys exists in ${namespace}; left unchanged" >&2
else
  python -m ops.keys generate --file "${workdir}/pseudonym-keys.json" >&2
  create pseudonym-keys --from-file=pseudonym-keys.json="${workdir}/pseudonym-keys.json"
fi

if exists recsys-database; then
  echo "secret recsys-database exists in ${namespace}; left unchanged" >&2
else
  password="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
  url="postgresql+psycopg://recsys:${password}@${db_host}:5432/recsys"
  create recsys-database \
    --from-literal=postgres-password="${password}" \
    --from-literal=feature-store-url="${url}" \
    --from-literal=privacy-gateway-url="${url}"
fi
