#!/bin/bash
# Wall-clock benchmark: orch vs ansible-playbook on the same fleet, inventory and playbook.
#
#   bench/run.sh [--hosts N] [--repeat N] [--only orch|ansible] [--keep]
#
# Brings up N (default 20) sshd containers from the test image on a private network, then for each
# tool: resets the hosts, runs bench/site.yml once (first apply: changes) and again (no change),
# and checks every host's PLAY RECAP. Prints median wall times and orch/ansible ratios, and writes
# bench/results/latest.md. Removes its containers and network on exit, also on failure or Ctrl-C.
#
# Environment: ORCH_BIN (skip the release build and use this binary), ANSIBLE_CORE_VERSION,
# ORCH_BENCH_CACHE (venv location; default ~/.cache/orch-bench), ORCH_BENCH_RUN_TIMEOUT (s, per run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

hosts=20 repeat=1 only=both keep=0
while (($#)); do
  case $1 in
    --hosts) hosts=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $hosts =~ ^[1-9][0-9]*$ && $hosts -le 200 ]] || { echo "--hosts must be 1..200" >&2; exit 2; }
[[ $repeat =~ ^[1-9][0-9]*$ ]] || { echo "--repeat must be a positive number" >&2; exit 2; }
case $only in both) tools=(ansible orch) ;; orch|ansible) tools=("$only") ;; *) echo "--only orch|ansible" >&2; exit 2 ;; esac

ansible_version=${ANSIBLE_CORE_VERSION:-2.19.14}
cache=${ORCH_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/orch-bench}
run_timeout=${ORCH_BENCH_RUN_TIMEOUT:-900}
playbook=$here/site.yml
tasks_per_host=10 changes_on_apply=6 # keep in step with site.yml
label=orch-bench
network=orch-bench-$$
results=$here/results
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/orch-bench.XXXXXX")
containers=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((keep)); then
    log "--keep: containers on network $network and $work left in place"
  else
    ((${#containers[@]})) && docker rm -f "${containers[@]}" >/dev/null 2>&1
    docker network rm "$network" >/dev/null 2>&1
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------- tools
command -v docker >/dev/null || { echo "docker is required" >&2; exit 1; }
command -v ssh-keygen >/dev/null || { echo "ssh-keygen is required (apt-get install openssh-client)" >&2; exit 1; }

ansible_playbook=
if [[ " ${tools[*]} " == *" ansible "* ]]; then
  venv=$cache/venv-ansible-core-$ansible_version
  if [[ ! -x $venv/bin/ansible-playbook ]]; then
    log "installing ansible-core $ansible_version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    timeout 900 "$venv/bin/pip" install --quiet --disable-pip-version-check "ansible-core==$ansible_version" >&2
  fi
  ansible_playbook=$venv/bin/ansible-playbook
fi

orch=
if [[ " ${tools[*]} " == *" orch "* ]]; then
  if [[ -n ${ORCH_BIN:-} ]]; then
    orch=$ORCH_BIN
  else
    log "building orch (release)"
    timeout 2400 cargo build --quiet --release --bin orch --manifest-path "$repo/Cargo.toml" >&2
    target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
    orch=$target_dir/release/orch
  fi
  [[ -x $orch ]] || { echo "orch binary not found: $orch" >&2; exit 1; }
fi

# Other work on the machine skews wall times: the load averages go into the report.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- fleet
image=$("$repo/tests/support/image/build.sh")
"$repo/tests/support/cleanup.sh" "$label"
created=$(date +%s)
labels=(--label "$label=1" --label "$label.pid=$$" --label "$label.created=$created")

mkdir -p "$work/home/.ssh" "$work/keys" "$work/logs"
chmod 700 "$work/home/.ssh"
key=$work/keys/id_ed25519
ssh-keygen -q -t ed25519 -N '' -C orch-bench -f "$key"
pubkey=$(cat "$key.pub")

log "starting $hosts hosts ($image)"
docker network create "${labels[@]}" "$network" >/dev/null
pids=()
for i in $(seq "$hosts"); do
  containers+=("$network-h$i")
  timeout 120 docker run -d --name "$network-h$i" --hostname "h$i" --network "$network" "${labels[@]}" \
    -e "ORCH_TEST_PUBKEY=$pubkey" "$image" >/dev/null &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || { echo "a container did not start" >&2; exit 1; }; done

ips=()
for c in "${containers[@]}"; do
  ips+=("$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$c")")
done
deadline=$((SECONDS + 60))
for ip in "${ips[@]}"; do
  until [[ $(timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/22" && head -c 4 <&3' _ "$ip" 2>/dev/null) == SSH- ]]; do
    ((SECONDS < deadline)) || { echo "sshd on $ip did not answer within 60 s" >&2; exit 1; }
    sleep 0.1
  done
done

inventory=$work/inventory.ini
# Settings come from the environment (tool_command); an empty config keeps ~/.ansible.cfg out.
printf '[defaults]\n' >"$work/ansible.cfg"
known_hosts=$work/home/.ssh/known_hosts
{
  echo "[targets]"
  for i in $(seq "$hosts"); do echo "h$i ansible_host=${ips[i-1]}"; done
  echo
  echo "[targets:vars]"
  echo "ansible_user=root"
  echo "ansible_ssh_private_key_file=$key"
  echo "ansible_python_interpreter=/usr/bin/python3"
} >"$inventory"
for i in $(seq "$hosts"); do
  echo "${ips[i-1]} $(docker exec "${containers[i-1]}" cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)"
done >"$known_hosts"
log "fleet ready: $hosts hosts on $network"

# ---------------------------------------------------------------- runs
reset_hosts() {
  local c pids=()
  for c in "${containers[@]}"; do docker exec "$c" rm -rf /opt/bench & pids+=($!); done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

total_logins() {
  local c n total=0
  for c in "${containers[@]}"; do
    n=$(docker exec "$c" grep -cE 'Accepted (publickey|password) for' /var/log/sshd.log || true)
    total=$((total + n))
  done
  echo "$total"
}

# check_recap LOG EXPECTED_CHANGED: every host ok=10, changed=EXPECTED, nothing failed or unreachable.
check_recap() {
  awk -v hosts="$hosts" -v ok="$tasks_per_host" -v changed="$2" '
    /PLAY RECAP/ { in_recap = 1; seen = 0; bad = ""; next }
    in_recap && $2 == ":" {
      seen++
      line = $0
      if (line !~ ("ok=" ok "[ \t]") || line !~ ("changed=" changed "[ \t]") ||
          line !~ /unreachable=0[ \t]/ || line !~ /failed=0[ \t]/) bad = bad "\n  " line
    }
    END {
      if (!in_recap) { print "no PLAY RECAP"; exit 1 }
      if (seen != hosts) { print "recap lists " seen " hosts, expected " hosts; exit 1 }
      if (bad != "") { print "unexpected recap (want ok=" ok " changed=" changed "):" bad; exit 1 }
    }' "$1"
}

tool_command() {
  case $1 in
    ansible)
      env ANSIBLE_FORKS="$hosts" ANSIBLE_PIPELINING=True ANSIBLE_HOST_KEY_CHECKING=True \
        ANSIBLE_SSH_ARGS="-C -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$known_hosts -o StrictHostKeyChecking=yes" \
        ANSIBLE_SSH_CONTROL_PATH_DIR="$work/cp-$2" ANSIBLE_HOME="$work/ansible-home" \
        ANSIBLE_LOCAL_TEMP="$work/ansible-tmp" ANSIBLE_RETRY_FILES_ENABLED=False ANSIBLE_NOCOLOR=1 \
        ANSIBLE_DEPRECATION_WARNINGS=False ANSIBLE_CONFIG="$work/ansible.cfg" \
        "$ansible_playbook" -i "$inventory" "$playbook"
      ;;
    orch)
      env -i PATH="$PATH" HOME="$work/home" NO_COLOR=1 TERM=dumb \
        "$orch" run -i "$inventory" -f "$hosts" "$playbook"
      ;;
  esac
}

export -f tool_command
export hosts known_hosts work inventory playbook ansible_playbook orch
declare -A times logins
failures=0
for r in $(seq "$repeat"); do
  for tool in "${tools[@]}"; do
    reset_hosts
    for phase in apply noop; do
      run_log=$work/logs/$tool-$phase-$r.log
      expected=$([[ $phase == apply ]] && echo "$changes_on_apply" || echo 0)
      before=$(total_logins)
      start=$EPOCHREALTIME
      set +e
      (cd "$work" && timeout "$run_timeout" bash -c 'tool_command "$@"' _ "$tool" "$phase-$r") >"$run_log" 2>&1
      status=$?
      set -e
      end=$EPOCHREALTIME
      elapsed=$(seconds_between "$start" "$end")
      after=$(total_logins)
      verdict=$(check_recap "$run_log" "$expected") || true
      if ((status != 0)) || [[ -n $verdict ]]; then
        failures=$((failures + 1))
        log "$tool $phase #$r FAILED (exit $status after ${elapsed}s) ${verdict}"
        tail -n 30 "$run_log" >&2
        elapsed=FAILED
      else
        log "$tool $phase #$r: ${elapsed}s, $((after - before)) ssh logins"
      fi
      times[$tool.$phase]+="$elapsed "
      logins[$tool.$phase]=$((after - before))
    done
  done
done

# ---------------------------------------------------------------- report
summary() { # tool phase -> median seconds, or "-" / "FAILED"
  local values=${times[$1.$2]:-}
  if [[ -z $values ]]; then echo "-"; elif [[ $values == *FAILED* ]]; then echo FAILED; else median $values; fi
}
ratio() { [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }' || echo "-"; }

table=$(
  echo "| run | orch (s) | ansible-playbook (s) | orch / ansible | ssh logins orch / ansible |"
  echo "|---|---:|---:|---:|---:|"
  for phase in apply noop; do
    name=$([[ $phase == apply ]] && echo "first apply ($changes_on_apply changes/host)" || echo "second run (no change)")
    o=$(summary orch "$phase") a=$(summary ansible "$phase")
    echo "| $name | $o | $a | $(ratio "$o" "$a") | ${logins[orch.$phase]:--} / ${logins[ansible.$phase]:--} |"
  done
)
versions=$(
  [[ -n $ansible_playbook ]] && echo "- ansible-core: $("$ansible_playbook" --version | sed -n 1p)"
  [[ -n $orch ]] && echo "- orch: $("$orch" --version 2>/dev/null || echo unknown), commit $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (dirty)')"
  true
)
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$results"
{
  echo "# orch benchmark: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "$hosts hosts (sshd containers on one machine: $(nproc) cores, ${cpu:-unknown CPU}),"
  echo "$tasks_per_host tasks (bench/site.yml), median of $repeat run(s) per cell, wall-clock seconds."
  echo "Both tools: forks = $hosts, strict host key checking against the same known_hosts, cold SSH"
  echo "connections at the start of every run. ansible-playbook: pipelining on, OpenSSH ControlMaster"
  echo "(its default ssh_args), no fact gathering. Hosts are reset between tools."
  echo "Load average (1/5/15 min) before: $load_before, after: $load_after."
  echo
  echo "$table"
  echo
  echo "$versions"
} >"$results/latest.md"

echo
echo "$table"
echo
echo "written: $results/latest.md"
((failures == 0)) || { echo "$failures run(s) failed" >&2; exit 1; }
