#!/usr/bin/env bash
# Feeds wsprobe's files to the tools its users run, installed from the package registries
# into target/ (nothing global):
#   - check-jsonschema validates the CI templates against GitHub's and GitLab's own schemas;
#   - Python jsonschema and ajv (strict, draft 2020-12) compile every schema and check its
#     examples, resolving the $refs between files by $id;
#   - Modelina (behind `asyncapi generate models`) makes typed TypeScript models of every
#     message in asyncapi.yaml, none of them `any`; the official AsyncAPI parser reads it and the
#     README's example document (examples/asyncapi-feed/feed.yaml) without an error;
#   - every JUnit report wsprobe writes (run, serve, snapshot; passing, failing, empty, and one
#     whose transcript holds characters XML 1.0 forbids) validates against Jenkins' JUnit schema
#     (junit-10.xsd, which PyPI's pytest sdist ships for its own tests) with xmlschema.
#
#   bash ci/ecosystem.sh      # from the repository root; exits 1 on any problem
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/ecosystem-venv
if [ ! -x "$venv/bin/check-jsonschema" ] || ! "$venv/bin/python" -c 'import xmlschema' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet check-jsonschema jsonschema xmlschema
fi
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows ci/github-actions.yml
"$venv/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci ci/gitlab-ci.yml
"$venv/bin/python" ci/jsonschema-check.py schemas

node_dir=target/ecosystem-node
if [ ! -d "$node_dir/node_modules/@asyncapi/modelina" ]; then
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --silent --no-audit --no-fund \
    ajv@8 ajv-formats@3 @asyncapi/modelina@5 @asyncapi/parser@3 >/dev/null
fi
NODE_PATH="$node_dir/node_modules" node ci/ajv-check.cjs schemas
NODE_PATH="$node_dir/node_modules" node ci/asyncapi-models.cjs schemas/asyncapi.yaml
# The shipped document and the README's example, as the official parser reads them.
NODE_PATH="$node_dir/node_modules" node ci/asyncapi-validate.cjs schemas/asyncapi.yaml examples/asyncapi-feed/feed.yaml

work=target/ecosystem
xsd="$work/junit-10.xsd"
if [ ! -f "$xsd" ]; then
  mkdir -p "$work"
  "$venv/bin/pip" download --quiet --no-deps --no-binary :all: pytest==8.3.3 -d "$work"
  tar xzf "$work/pytest-8.3.3.tar.gz" -C "$work" --strip-components=3 pytest-8.3.3/testing/example_scripts/junit-10.xsd
fi
# The debug binaries `cargo test --workspace` just built: no second, release build.
cargo build --quiet --locked --workspace --bins
wsprobe=target/debug/wsprobe
junit="$work/junit"
rm -rf "$junit" && mkdir -p "$junit"
expect_exit() { # CODE COMMAND...: the command must exit with CODE
  local want=$1 got=0
  shift
  "$@" >"$junit/last.log" 2>&1 || got=$?
  [ "$got" = "$want" ] || { echo "ecosystem: '$*' exited $got, expected $want" >&2; cat "$junit/last.log" >&2; exit 1; }
}
expect_exit 0 "$wsprobe" run --format junit --output "$junit/run-bundled.xml"
expect_exit 1 "$wsprobe" serve --bind 127.0.0.1:0 --duration 200ms --format junit --output "$junit/serve-no-client.xml"
target/debug/reference-server --echo --bind 127.0.0.1:0 >"$work/echo.url" 2>"$work/echo.log" &
echo_server=$!
trap 'kill "$echo_server" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do grep -q '^listening on ' "$work/echo.url" 2>/dev/null && break; sleep 0.1; done
echo_url=$(sed -n 's/^listening on //p' "$work/echo.url")
[ -n "$echo_url" ] || { echo "ecosystem: reference-server --echo did not start; see $work/echo.log" >&2; exit 1; }
expect_exit 1 "$wsprobe" run --url "$echo_url" --no-builtin --scenario ci/fixtures/junit-forbidden-characters.yaml \
  --format junit --output "$junit/run-forbidden-characters.xml"
grep -q $'\xef\xbf\xbd \xef\xbf\xbd' "$junit/run-forbidden-characters.xml" ||
  { echo "ecosystem: the forbidden characters did not reach the JUnit transcript as U+FFFD" >&2; exit 1; }
expect_exit 1 "$wsprobe" run --url "$echo_url" --filter 'heartbeat.*' --format junit --output "$junit/run-failing.xml"
expect_exit 0 "$wsprobe" snapshot record --dir "$work/snapshots" --filter 'heartbeat.*'
code=0
"$wsprobe" snapshot diff --dir "$work/snapshots" --filter 'heartbeat.*' --url "$echo_url" --format junit \
  >"$junit/snapshot-changed.xml" 2>"$junit/last.log" || code=$?
[ "$code" = 1 ] || { echo "ecosystem: snapshot diff against the echo server exited $code, expected 1" >&2; exit 1; }
"$venv/bin/python" ci/junit-check.py "$xsd" "$junit"/*.xml

# Packaging: both crates package and build from their .crate files, and the server library
# pulls in no command-line dependency without its default `cli` feature.
cargo package --workspace --allow-dirty --quiet
if cargo tree -p reference-server --no-default-features --edges normal --prefix none | grep -Eq '^(clap|tracing-subscriber|anyhow) '; then
  echo "ecosystem: the reference-server library depends on a command-line crate without its cli feature" >&2
  exit 1
fi
echo "packaging: cargo package --workspace ok; the reference-server library has no command-line dependencies"
