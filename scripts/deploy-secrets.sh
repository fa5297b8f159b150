#!/usr/bin/env bash
# The secrets deploy/docker-compose.yml needs, generated: deploy/.env (the gatherer's bearer
# tokens, MariaDB's root password, the analyst's password) and deploy/users (the analyst's
# argon2 hash, mounted into the analyser). See --help and docs/DEPLOY.md.
set -euo pipefail

usage() {
  cat <<'TXT'
usage: scripts/deploy-secrets.sh [--out DIR] [--force]

Writes two files for `docker compose -f deploy/docker-compose.yml up`, which refuses to
start without them:

  .env    PULSE_INGEST_TOKENS   what bots send to /gather as `Authorization: Bearer …`
                                (several, comma-separated, let a new token in before an
                                old one goes)
          PULSE_EXPORT_TOKEN    what the analyser sends to read the gatherer's export
          PULSE_DB_PASSWORD     MariaDB's root password (set when its volume is created)
          PULSE_ANALYST_PASSWORD the password of the user `analyst` (dashboard and API)
  users   analyst:<argon2 hash of that password>, the analyser's users file

Every secret is 32 random bytes from /dev/urandom, in hex. The password is hashed by
`analyser hash-password`: $PULSE_ANALYSER, else `analyser` on the PATH, else the one
scripts/build.sh builds, else the `pulse` image (docker compose build).

  --out DIR   where to write them (default: deploy/, where compose looks for .env)
  --force     replace existing files (new secrets: MariaDB keeps its old password on an
              existing volume, and every bot needs the new ingest token)
  -h, --help  this text
TXT
}

out=""
force=false
while (($#)); do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift ;;
    --force) force=true ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
if [[ -n $out ]]; then
  out=$(cd "$out" && pwd)
fi
cd "$(dirname "$0")/.."
out=${out:-$PWD/deploy}

for file in "$out/.env" "$out/users"; do
  if [[ -e $file && $force != true ]]; then
    echo "$file exists; keeping it (--force makes new secrets)" >&2
    exit 1
  fi
done

random_hex() {
  od -An -vtx1 -N32 /dev/urandom | tr -d ' \n'
}

# `analyser hash-password`, from the first place that has an analyser.
hash_password() {
  local analyser=${PULSE_ANALYSER:-}
  if [[ -z $analyser ]] && command -v analyser >/dev/null; then
    analyser=analyser
  fi
  if [[ -z $analyser ]]; then
    local built
    built="$(source scripts/build.sh && pulse_bin_dir)/analyser"
    [[ -x $built ]] && analyser=$built
  fi
  if [[ -n $analyser ]]; then
    "$analyser" hash-password
  elif command -v docker >/dev/null && docker image inspect pulse >/dev/null 2>&1; then
    docker run --rm -i --entrypoint /usr/local/bin/analyser pulse hash-password
  else
    echo "no analyser to hash the password with: build one (cargo build -p analyser, or docker compose -f deploy/docker-compose.yml build) and run this again" >&2
    return 1
  fi
}

password=$(random_hex)
hash=$(printf '%s\n' "$password" | hash_password)
if [[ $hash != '$argon2'* ]]; then
  echo "analyser hash-password printed no hash" >&2
  exit 1
fi

umask 077
cat >"$out/.env.new" <<ENV
# Secrets for deploy/docker-compose.yml, made by scripts/deploy-secrets.sh. Keep this file
# private: it is all anyone needs to read or write your metrics.
PULSE_INGEST_TOKENS=$(random_hex)
PULSE_EXPORT_TOKEN=$(random_hex)
PULSE_DB_PASSWORD=$(random_hex)
PULSE_ANALYST_PASSWORD=$password
ENV
# The analyser runs as another user than this file's owner: the hash must be readable.
umask 022
printf '# analysts (name:argon2 hash); see scripts/deploy-secrets.sh\nanalyst:%s\n' "$hash" >"$out/users.new"
mv "$out/.env.new" "$out/.env"
mv "$out/users.new" "$out/users"
echo "wrote $out/.env and $out/users: log in as analyst with the PULSE_ANALYST_PASSWORD of .env"
