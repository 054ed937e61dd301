#!/usr/bin/env bash
# Creates the two Secrets the manifests reference but never contain, with fresh random
# material generated on this machine:
#   pseudonym-keys   the privacy gateway's HMAC key ring (file pseudonym-keys.json)
#   recsys-database  postgres-password, and the SQLAlchemy URLs of the feature store and the
#                    privacy gateway's budget ledger
# Usage: deploy/k8s/create-secrets.sh NAMESPACE [DATABASE_HOST]
# Run from the repository root with the project installed (it uses the gateway's own key tool).
# DATABASE_HOST defaults to the in-cluster StatefulSet ("postgres"); give the managed
# database's host name with components/external-postgres. Existing Secrets are left alone:
# rotate keys with `python -m services.privacy_gateway.keys rotate` on a copy and re-apply.
set -euo pipefail

namespace="${1:?usage: $0 NAMESPACE [DATABASE_HOST]}"
db_host="${2:-postgres}"
workdir="$(mktemp -d)"
trap 'rm -rf "${workdir}"' EXIT

if kubectl -n "${namespace}" get secret pseudonym-keys >/dev/null 2>&1; then
  echo "secret pseudonym-keys exists in ${namespace}; left unchanged"
else
  python -m services.privacy_gateway.keys generate --file "${workdir}/pseudonym-keys.json"
  kubectl -n "${namespace}" create secret generic pseudonym-keys \
    --from-file=pseudonym-keys.json="${workdir}/pseudonym-keys.json"
fi

if kubectl -n "${namespace}" get secret recsys-database >/dev/null 2>&1; then
  echo "secret recsys-database exists in ${namespace}; left unchanged"
else
  password="$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
  url="postgresql+psycopg://recsys:${password}@${db_host}:5432/recsys"
  kubectl -n "${namespace}" create secret generic recsys-database \
    --from-literal=postgres-password="${password}" \
    --from-literal=feature-store-url="${url}" \
    --from-literal=privacy-gateway-url="${url}"
fi
