# Shared by load/matrix and load/replicas (sourced, from the repository root).

# Prepares the two plugin folders under $1: "none", an empty chain, and
# "three", the bundled chain with rate-limit raised so it never refuses (it
# still does its bookkeeping on every message).
prepare_plugins() {
  mkdir -p "$1/none" "$1/three"
  : > "$1/none/chain.toml"
  cp plugins/target/wasm32-wasip2/release/{rate_limit,injection_guard,redact}.wasm "$1/three/"
  sed -e '/^source = /d' \
      -e 's|target/wasm32-wasip2/release/||' \
      -e 's/^per_sender_per_minute = .*/per_sender_per_minute = 60000000/' \
      -e 's/^per_sender_burst = .*/per_sender_burst = 1000000/' \
      -e 's/^per_pair_per_minute = .*/per_pair_per_minute = 60000000/' \
      -e 's/^per_pair_burst = .*/per_pair_burst = 1000000/' \
      plugins/chain.toml > "$1/three/chain.toml"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The line above each table: which machine, which commit, when.
machine_line() {
  local cpu
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
  echo "Machine: $(nproc) × ${cpu:-unknown CPU}; commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' plus uncommitted changes'); $(date -u +%Y-%m-%d)."
}
