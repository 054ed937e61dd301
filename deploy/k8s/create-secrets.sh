#!/usr/bin/env bash
# Creates the Secrets the manifests reference but never contain, with fresh random material
# generated on this machine:
#   pseudonym-keys   the privacy gateway's HMAC key ring (file pseudonym-keys.json)
#   recsys-database  postgres-password, and the SQLAlchemy URLs of the feature store and the
#                    privacy gateway's budget ledger
#   recsys-tls-NAME  mTLS between the services: one per service and one for the DP release
#                    client, each with tls.crt (CN and DNS SANs = the Service name, its
#                    namespaced forms), tls.key and ca.crt, the CA every peer checks. The
#                    feature store (privacy-gateway) and the gateway (dp-release) grant their
#                    privileged methods to the name in the certificate (privileged_callers),
#                    so a name is only ever issued to its own workload.
#                    The CA's key is used here once and never stored; a new certificate means
#                    a new CA: delete the recsys-tls-* Secrets, rerun, restart the Deployments.
# Usage: deploy/k8s/create-secrets.sh [--dry-run] [--no-tls] NAMESPACE [DATABASE_HOST]
# Run from the repository root with the project installed (it uses the gateway's own key tool).
# DATABASE_HOST defaults to the in-cluster StatefulSet ("postgres"); give the managed
# database's host name with components/external-postgres. Existing Secrets are left alone:
# rotate keys with `python -m ops.keys rotate` (docs/deploy.md).
# --dry-run prints both Secrets as YAML instead (for kubeseal, SOPS or review) and needs no
# cluster; treat that output as the secret it is.
# --no-tls leaves the recsys-tls-* Secrets to cert-manager (components/cert-manager).
set -euo pipefail

dry_run=0
tls=1
while [[ "${1:-}" == --* ]]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --no-tls) tls=0 ;;
    *) echo "unknown option $1" >&2; exit 64 ;;
  esac
  shift
done
namespace="${1:?usage: $0 [--dry-run] [--no-tls] NAMESPACE [DATABASE_HOST]}"
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

# The workloads that hold a certificate: the six services and the DP release client.
tls_names=(orchestrator privacy-gateway feature-store retrieval ranker reranker dp-release)
if [[ "${tls}" == 1 ]]; then
  missing=()
  for name in "${tls_names[@]}"; do
    exists "recsys-tls-${name}" || missing+=("${name}")
  done
  if [[ "${#missing[@]}" -lt "${#tls_names[@]}" && "${#missing[@]}" -gt 0 ]]; then
    # Certificates from two CAs would not trust each other.
    echo "some recsys-tls-* Secrets exist in ${namespace}, others not (${missing[*]}):" \
      "delete them all to issue a new set" >&2
    exit 1
  fi
  if [[ "${#missing[@]}" == 0 ]]; then
    echo "secrets recsys-tls-* exist in ${namespace}; left unchanged" >&2
  else
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
      -keyout "${workdir}/ca.key" -out "${workdir}/ca.crt" -days 3650 -sha256 \
      -subj "/CN=acme-recsys ${namespace} CA" \
      -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    for name in "${tls_names[@]}"; do
      dir="${workdir}/${name}"
      mkdir -p "${dir}"
      openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "${dir}/tls.key" -out "${dir}/tls.csr" -subj "/CN=${name}" 2>/dev/null
      # Server and client use: each service answers its callers and calls its own downstreams.
      cat >"${dir}/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:${name},DNS:${name}.${namespace}.svc,DNS:${name}.${namespace}.svc.cluster.local
EXT
      openssl x509 -req -in "${dir}/tls.csr" -CA "${workdir}/ca.crt" -CAkey "${workdir}/ca.key" \
        -CAcreateserial -out "${dir}/tls.crt" -days 365 -sha256 \
        -extfile "${dir}/ext.cnf" 2>/dev/null
      cp "${workdir}/ca.crt" "${dir}/ca.crt"
      create "recsys-tls-${name}" --type=kubernetes.io/tls \
        --from-file=tls.crt="${dir}/tls.crt" \
        --from-file=tls.key="${dir}/tls.key" \
        --from-file=ca.crt="${dir}/ca.crt"
    done
    rm -f "${workdir}/ca.key"
  fi
fi
