#!/usr/bin/env bash
# Start, stop and inspect the real local services settleguard talks to:
#   kafka       Apache Kafka (KRaft, broker + controller in one JVM), jars from Maven Central
#   redis       redis-server from Debian's package
#   prometheus  prometheus (with promtool) from Debian's package
#   smtp        scripts/smtp_maildir.py (aiosmtpd, from .venv): stores each mail as a file
# Everything binds 127.0.0.1 only. Run with --help for usage.
#
# The small `bash -c '...' ARG...` scripts below read their own arguments ($0, $1), so
# their single quotes are meant:
# shellcheck disable=SC2016
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VAR_DIR=${SETTLEGUARD_VAR:-$ROOT/var}
SERVICES_DIR=$VAR_DIR/services
READY_TIMEOUT=${SETTLEGUARD_SERVICE_TIMEOUT:-90}  # seconds to wait for a service to answer
STOP_TIMEOUT=${SETTLEGUARD_STOP_TIMEOUT:-30}      # seconds between SIGTERM and SIGKILL
ALL_SERVICES=(kafka redis prometheus smtp)

KAFKA_VERSION=${SETTLEGUARD_KAFKA_VERSION:-3.9.2}
KAFKA_PORT=${SETTLEGUARD_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${SETTLEGUARD_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_HOME=${SETTLEGUARD_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/settleguard/kafka-$KAFKA_VERSION}
KAFKA_HEAP_OPTS=${SETTLEGUARD_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
JAVA=${SETTLEGUARD_JAVA:-java}
REDIS_PORT=${SETTLEGUARD_REDIS_PORT:-6379}
PROMETHEUS_PORT=${SETTLEGUARD_PROMETHEUS_PORT:-9090}
PROMETHEUS_CONFIG=${SETTLEGUARD_PROMETHEUS_CONFIG:-}  # default: see prometheus_config
SMTP_PORT=${SETTLEGUARD_SMTP_PORT:-8025}
PYTHON=${SETTLEGUARD_PYTHON:-$ROOT/.venv/bin/python}  # the venv with aiosmtpd (make setup)
WORKER_PORT=${SETTLEGUARD_WEB_PORT:-6066}  # the worker's /metrics, scraped by Prometheus

# The addresses our own services listen on; `env` prints these unless the user set others.
OWN_KAFKA=127.0.0.1:$KAFKA_PORT
OWN_REDIS=redis://127.0.0.1:$REDIS_PORT/0
OWN_PROMETHEUS=http://127.0.0.1:$PROMETHEUS_PORT
OWN_SMTP=127.0.0.1:$SMTP_PORT

# Taken from the caller's environment before anything else can touch them.
USER_KAFKA=${SETTLEGUARD_KAFKA_BOOTSTRAP:-}
USER_REDIS=${SETTLEGUARD_REDIS_URL:-}
USER_PROMETHEUS=${SETTLEGUARD_PROMETHEUS_URL:-}
USER_SMTP=${SETTLEGUARD_SMTP_HOST:+$SETTLEGUARD_SMTP_HOST:$SMTP_PORT}

LOCK_FD=
SERVICES=()

usage() {
  cat <<EOF
Usage: scripts/services.sh COMMAND [SERVICE...]

Commands:
  start [SERVICE...]   start services (default: all); a running one is left as it is
  stop [SERVICE...]    stop services (default: all); a stopped one is left as it is
  status [SERVICE...]  show each service; exit 0 only when all named ones answer
  install [SERVICE...] fetch the Kafka jars / install the Debian packages, start nothing
  env                  print export lines for eval: SETTLEGUARD_KAFKA_BOOTSTRAP,
                       SETTLEGUARD_REDIS_URL, SETTLEGUARD_PROMETHEUS_URL,
                       SETTLEGUARD_SMTP_HOST, SETTLEGUARD_SMTP_PORT, SETTLEGUARD_SMTP_MAILDIR
  kafka-run CLASS ARG...  run a Kafka tool class with the downloaded jars, e.g.
                       kafka-run org.apache.kafka.tools.TopicCommand \\
                         --bootstrap-server $OWN_KAFKA --list
  -h, --help           this text

Services: kafka, redis, prometheus, smtp, all (= all four). smtp stores every message it
accepts as a file in \$SETTLEGUARD_SMTP_MAILDIR (its data dir's maildir/new).

All listen on 127.0.0.1 only. Data and logs: \$SETTLEGUARD_VAR/services/NAME
(now $SERVICES_DIR). Kafka $KAFKA_VERSION jars are fetched once with Maven into
$KAFKA_HOME;
redis-server and prometheus are installed with apt-get when missing.

External servers: when SETTLEGUARD_KAFKA_BOOTSTRAP, SETTLEGUARD_REDIS_URL or
SETTLEGUARD_PROMETHEUS_URL is set to anything but our own address, start only checks
that it answers (and fails if not), stop leaves it alone, env echoes it unchanged.

Settings (environment): SETTLEGUARD_VAR, SETTLEGUARD_KAFKA_PORT (9092),
SETTLEGUARD_KAFKA_CONTROLLER_PORT (kafka port + 1), SETTLEGUARD_KAFKA_VERSION (3.9.2),
SETTLEGUARD_KAFKA_HOME, SETTLEGUARD_KAFKA_HEAP_OPTS ("-Xms256m -Xmx512m"),
SETTLEGUARD_REDIS_PORT (6379), SETTLEGUARD_PROMETHEUS_PORT (9090),
SETTLEGUARD_SMTP_PORT (8025), SETTLEGUARD_SMTP_HOST (external SMTP server),
SETTLEGUARD_PYTHON (.venv/bin/python, runs the smtp server),
SETTLEGUARD_PROMETHEUS_CONFIG (default: deploy/prometheus/prometheus.yml with its
compose hostnames turned into 127.0.0.1), SETTLEGUARD_WEB_PORT (6066, the worker
Prometheus scrapes), SETTLEGUARD_SERVICE_TIMEOUT (90 s),
SETTLEGUARD_STOP_TIMEOUT (30 s), SETTLEGUARD_JAVA (java).
EOF
}

# ---------------------------------------------------------------- small helpers

say() { printf '%s\n' "$*"; }
warn() { printf '%s\n' "$*" >&2; }

die() {  # die MESSAGE [LOGFILE]: explain, show the end of the log, exit 1
  warn "error: $1"
  if [[ -n ${2:-} && -s $2 ]]; then
    warn "---- last lines of $2 ----"
    tail -n 25 "$2" >&2
    warn "----"
  fi
  exit 1
}

now_us() { printf '%s' "${EPOCHREALTIME/./}"; }

since() {  # since START_US: seconds elapsed, e.g. "4.27s"
  local cs=$((($(now_us) - $1) / 10000))
  printf '%d.%02ds' $((cs / 100)) $((cs % 100))
}

dir_of() { printf '%s' "$SERVICES_DIR/$1"; }
pidfile_of() { printf '%s/%s.pid' "$(dir_of "$1")" "$1"; }
logfile_of() { printf '%s/%s.log' "$(dir_of "$1")" "$1"; }

port_of() {
  case $1 in
    kafka) printf '%s' "$KAFKA_PORT" ;;
    redis) printf '%s' "$REDIS_PORT" ;;
    prometheus) printf '%s' "$PROMETHEUS_PORT" ;;
    smtp) printf '%s' "$SMTP_PORT" ;;
  esac
}

own_url_of() {
  case $1 in
    kafka) printf '%s' "$OWN_KAFKA" ;;
    redis) printf '%s' "$OWN_REDIS" ;;
    prometheus) printf '%s' "$OWN_PROMETHEUS" ;;
    smtp) printf '%s' "$OWN_SMTP" ;;
  esac
}

user_url_of() {
  case $1 in
    kafka) printf '%s' "$USER_KAFKA" ;;
    redis) printf '%s' "$USER_REDIS" ;;
    prometheus) printf '%s' "$USER_PROMETHEUS" ;;
    smtp) printf '%s' "$USER_SMTP" ;;
  esac
}

env_name_of() {
  case $1 in
    kafka) printf 'SETTLEGUARD_KAFKA_BOOTSTRAP' ;;
    redis) printf 'SETTLEGUARD_REDIS_URL' ;;
    prometheus) printf 'SETTLEGUARD_PROMETHEUS_URL' ;;
    smtp) printf 'SETTLEGUARD_SMTP_HOST' ;;
  esac
}

# A process counts as alive unless gone or a zombie: PID 1 on these machines does not
# reap orphans, so a stopped daemon can linger as a zombie that `kill -0` still finds.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

cmdline_of() { tr -s '\0 ' ' ' <"/proc/$1/cmdline" 2>/dev/null | sed 's/ $//'; }

# The pid in the service's pid file, when that process is alive and still ours (its
# command line names our config, data dir or port), so a recycled pid is never signalled.
own_pid() {
  local svc=$1 pid marker
  pid=$(cat "$(pidfile_of "$svc")" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  case $svc in
    kafka) marker="kafka.Kafka $(dir_of kafka)/server.properties" ;;
    redis) marker="redis-server 127.0.0.1:$REDIS_PORT" ;;  # the title redis gives itself
    prometheus) marker="--storage.tsdb.path=$(dir_of prometheus)/data" ;;
    smtp) marker="smtp_maildir.py --host 127.0.0.1 --port $SMTP_PORT" ;;
  esac
  [[ $(cmdline_of "$pid") == *"$marker"* ]] || return 1
  printf '%s' "$pid"
}

port_open() {  # port_open HOST PORT: something accepts TCP connections there
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

port_owner() {  # port_owner PORT: "pid N: command line" of the listener, when ss can tell
  local pid
  pid=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1) || true
  pid=${pid#pid=}
  if [[ -n $pid ]]; then printf 'pid %s: %.100s' "$pid" "$(cmdline_of "$pid")"; else printf 'unknown process'; fi
}

# Serialise start/stop of one service on one port across every checkout on this machine,
# so two sessions starting "all" at once do not race for the same port or data dir.
lock() {
  local dir=${TMPDIR:-/tmp}/settleguard-locks file
  file=$dir/$1-$(port_of "$1").lock
  mkdir -p "$dir"
  exec {LOCK_FD}>>"$file"
  flock -w "$READY_TIMEOUT" "$LOCK_FD" || die "timed out waiting for the lock $file"
}

unlock() {
  if [[ -n $LOCK_FD ]]; then exec {LOCK_FD}>&-; fi
  LOCK_FD=
}

# detach LOG PIDFILE CMD...: run CMD in a session of its own so it outlives this script
# (and the terminal); the wrapper writes its own pid, then execs CMD under that pid.
# The lock fd is closed in the child, or the daemon would hold the lock forever.
detach() {
  local log=$1 pidfile=$2
  shift 2
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    </dev/null >>"$log" 2>&1 {LOCK_FD}>&- &
}

rotate_log() {  # keep one previous log once a log passes 50 MB
  if [[ -f $1 ]] && (($(stat -c %s "$1") > 50 * 1024 * 1024)); then mv -f "$1" "$1.1"; fi
}

# apt_install CMD PKG...: install Debian packages when CMD is missing. policy-rc.d stops
# the packages' own init scripts from starting daemons (e.g. a Prometheus on 0.0.0.0).
apt_install() {
  local cmd=$1 created_policy=
  shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  [[ $(id -u) == 0 ]] || die "$cmd is missing: install it with: sudo apt-get install --no-install-recommends $*"
  say "installing $* with apt-get (one time)..."
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  local log=$SERVICES_DIR/apt-get.log rc=0
  mkdir -p "$SERVICES_DIR"
  {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
        --no-install-recommends "$@"
  } >"$log" 2>&1 || rc=$?
  if [[ -n $created_policy ]]; then rm -f /usr/sbin/policy-rc.d; fi
  ((rc == 0)) || die "apt-get install $* failed" "$log"
  stop_package_daemons
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing $*" "$log"
}

# Belt and braces: should a package's init script have started its daemon anyway, stop
# it through that same script (which signals only the pid in its own pid file).
stop_package_daemons() {
  local name
  for name in prometheus prometheus-node-exporter redis-server; do
    if [[ -x /etc/init.d/$name ]] && /etc/init.d/"$name" status >/dev/null 2>&1; then
      say "stopping the $name daemon that its package started"
      /etc/init.d/"$name" stop >/dev/null 2>&1 || warn "could not stop $name: see /etc/init.d/$name"
    fi
  done
}

# ---------------------------------------------------------------- probes

# kafka_answers HOST PORT: a broker there answers a Metadata request (v4: kept by Kafka
# 3.x and 4.x alike) and lists at least one broker; KRaft only serves requests once the
# broker has caught up with the controller, so this means "ready for clients".
kafka_answers() {
  local hex
  # size=17 | api_key=3 | version=4 | correlation_id=7 | client_id="sg" | topics=null | no auto-create
  hex=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" &&
      printf "\x00\x00\x00\x11\x00\x03\x00\x04\x00\x00\x00\x07\x00\x02sg\xff\xff\xff\xff\x00" >&3 &&
      od -An -tx1 -N16 <&3' "$1" "$2" 2>/dev/null | tr -d ' \n') || return 1
  # reply: size(4) correlation_id(4) throttle_time_ms(4) broker_count(4)
  [[ ${#hex} == 32 && ${hex:8:8} == 00000007 && ${hex:24:8} != 00000000 ]]
}

# redis_reply HOST PORT: the first line a Redis server sends back to PING
redis_reply() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && IFS= read -r line <&3 &&
      printf "%s" "$line"' "$1" "$2" 2>/dev/null | tr -d '\r'
}

# smtp_banner HOST PORT: an SMTP server there greets with 220
smtp_banner() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && IFS= read -r line <&3 && printf "%s" "$line"' \
    "$1" "$2" 2>/dev/null | grep -q '^220'
}

prometheus_ready() { curl -fsS --max-time 3 "${1%/}/-/ready" >/dev/null 2>&1; }

healthy() {  # healthy SERVICE: our address answers like that service should
  case $1 in
    kafka) kafka_answers 127.0.0.1 "$KAFKA_PORT" ;;
    redis) [[ $(redis_reply 127.0.0.1 "$REDIS_PORT") == +PONG ]] ;;
    prometheus) prometheus_ready "$OWN_PROMETHEUS" ;;
    smtp) smtp_banner 127.0.0.1 "$SMTP_PORT" ;;
  esac
}

# split_addr ADDR DEFAULT_PORT: "HOST PORT" from host:port or scheme://user@host:port/path
split_addr() {
  local a=${1#*://} host port
  a=${a##*@}
  a=${a%%/*}
  if [[ $a == *:* && $a != *]* || $a == *]:* ]]; then host=${a%:*} port=${a##*:}; else host=$a port=$2; fi
  host=${host#[}
  host=${host%]}
  printf '%s %s\n' "${host:-127.0.0.1}" "$port"
}

# is_external SERVICE: the user pointed us at a server other than our own default address
is_external() {
  local svc=$1 url host port
  url=$(user_url_of "$svc")
  [[ -n $url ]] || return 1
  url=${url%%[,;]*}
  case $svc in
    kafka) read -r host port < <(split_addr "$url" 9092) ;;
    redis) read -r host port < <(split_addr "$url" 6379) ;;
    prometheus) read -r host port < <(split_addr "$url" 80) ;;
    smtp) read -r host port < <(split_addr "$url" 25) ;;
  esac
  ! [[ $host =~ ^(127\.0\.0\.1|localhost|::1)$ && $port == "$(port_of "$svc")" ]]
}

# external_answers SERVICE: the user's server answers (Kafka: any listed bootstrap server)
external_answers() {
  local url host port entry
  url=$(user_url_of "$1")
  case $1 in
    kafka)
      IFS=',;' read -ra entries <<<"$url"
      for entry in "${entries[@]}"; do
        read -r host port < <(split_addr "$entry" 9092)
        kafka_answers "$host" "$port" && return 0
      done
      return 1
      ;;
    redis)  # any reply will do: +PONG, or -NOAUTH when the server wants a password
      read -r host port < <(split_addr "$url" 6379)
      [[ $(redis_reply "$host" "$port") == [+-]* ]]
      ;;
    prometheus) prometheus_ready "$url" ;;
    smtp)
      read -r host port < <(split_addr "$url" 25)
      smtp_banner "$host" "$port"
      ;;
  esac
}

# wait_ready SERVICE PID: until the service answers; fail early if its process dies
wait_ready() {
  local svc=$1 pid=$2 deadline=$((SECONDS + READY_TIMEOUT))
  until healthy "$svc"; do
    alive "$pid" || die "$svc exited during start-up" "$(logfile_of "$svc")"
    ((SECONDS < deadline)) || die "$svc did not answer within ${READY_TIMEOUT}s (pid $pid still running)" "$(logfile_of "$svc")"
    sleep 0.2
  done
}

wait_pidfile() {  # wait_pidfile SERVICE: the pid the daemon wrote, once it has written it
  local svc=$1 deadline=$((SECONDS + 10)) pid
  until pid=$(own_pid "$svc"); do
    pid=$(cat "$(pidfile_of "$svc")" 2>/dev/null) || pid=
    if [[ -n $pid ]] && ! alive "$pid"; then die "$svc exited during start-up" "$(logfile_of "$svc")"; fi
    ((SECONDS < deadline)) || die "$svc wrote no pid file $(pidfile_of "$svc")" "$(logfile_of "$svc")"
    sleep 0.1
  done
  printf '%s' "$pid"
}

# ---------------------------------------------------------------- kafka

kafka_jars_present() { [[ -f $KAFKA_HOME/libs/.complete ]]; }

# Maven resolves kafka_2.13 (the broker), kafka-tools (topic and console tools) and a
# logging backend into libs/, once per version; later starts reuse the directory.
kafka_fetch_jars() {
  kafka_jars_present && return 0
  apt_install java openjdk-17-jre-headless
  apt_install mvn maven
  mkdir -p "$KAFKA_HOME"
  exec {dl_fd}>>"$KAFKA_HOME/.download.lock"
  flock -w 600 "$dl_fd" || die "timed out waiting for another download into $KAFKA_HOME"
  if ! kafka_jars_present; then
    local t0 log=$KAFKA_HOME/mvn.log
    t0=$(now_us)
    say "kafka: fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_HOME (one time)..."
    kafka_write_pom >"$KAFKA_HOME/pom.xml"
    rm -rf "$KAFKA_HOME/libs" "$KAFKA_HOME/libs.partial"
    mvn -B -q -f "$KAFKA_HOME/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs.partial" >"$log" 2>&1 ||
      die "Maven could not fetch Kafka $KAFKA_VERSION (set SETTLEGUARD_KAFKA_VERSION to another 3.x)" "$log"
    mv "$KAFKA_HOME/libs.partial" "$KAFKA_HOME/libs"
    touch "$KAFKA_HOME/libs/.complete"
    say "kafka: jars fetched in $(since "$t0")"
  fi
  exec {dl_fd}>&-
}

kafka_write_pom() {
  [[ $KAFKA_VERSION == 3.* ]] || die "only Kafka 3.x is set up here (its logging is reload4j); got $KAFKA_VERSION"
  cat <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by settleguard scripts/services.sh: the jars a local Kafka broker needs. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.settleguard</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>$KAFKA_VERSION</version>
      <exclusions>
        <!-- Kafka Connect (Jetty, Jersey, ...) is not needed for the broker or its tools -->
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
        <exclusion><groupId>com.fasterxml.jackson.jaxrs</groupId><artifactId>jackson-jaxrs-json-provider</artifactId></exclusion>
      </exclusions>
    </dependency>
    <!-- the logging backend Kafka 3.x ships with -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
    <dependency>
      <groupId>ch.qos.reload4j</groupId>
      <artifactId>reload4j</artifactId>
      <version>1.2.25</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>3.8.1</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
EOF
}

kafka_write_config() {
  local dir=$1
  cat >"$dir/server.properties" <<EOF
# Generated by scripts/services.sh at every start: single-node KRaft on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
EOF
  cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
EOF
}

# Quiet logging for the command-line tools: warnings to stderr only.
kafka_tools_log4j() {
  local file=$KAFKA_HOME/tools-log4j.properties
  if [[ ! -f $file ]]; then
    cat >"$file" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
  fi
  printf '%s' "$file"
}

kafka_tool() {  # kafka_tool CLASS ARG...: a Kafka command-line class on the cached jars
  "$JAVA" -Xmx256m -Dlog4j.configuration="file:$(kafka_tools_log4j)" -cp "$KAFKA_HOME/libs/*" "$@"
}

kafka_prepare() {
  local dir
  dir=$(dir_of kafka)
  if port_open 127.0.0.1 "$KAFKA_CONTROLLER_PORT"; then
    die "kafka: controller port 127.0.0.1:$KAFKA_CONTROLLER_PORT is taken by $(port_owner "$KAFKA_CONTROLLER_PORT"); set SETTLEGUARD_KAFKA_CONTROLLER_PORT"
  fi
  kafka_fetch_jars
  kafka_write_config "$dir"
  # KRaft needs its storage formatted once per data dir, with a cluster id kept beside it.
  if [[ ! -f $dir/data/meta.properties ]]; then
    if [[ ! -s $dir/cluster.id ]]; then
      kafka_tool kafka.tools.StorageTool random-uuid >"$dir/cluster.id" 2>>"$dir/kafka.log" ||
        die "kafka: could not generate a cluster id" "$dir/kafka.log"
    fi
    kafka_tool kafka.tools.StorageTool format --ignore-formatted \
      -t "$(cat "$dir/cluster.id")" -c "$dir/server.properties" >>"$dir/kafka.log" 2>&1 ||
      die "kafka: formatting $dir/data failed" "$dir/kafka.log"
  fi
}

kafka_launch() {
  local dir heap
  dir=$(dir_of kafka)
  read -ra heap <<<"$KAFKA_HEAP_OPTS"
  detach "$dir/kafka.log" "$dir/kafka.pid" "$JAVA" "${heap[@]}" \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$dir/log4j.properties" -Dkafka.logs.dir="$dir" \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$dir/server.properties"
}

# ---------------------------------------------------------------- redis

redis_prepare() { apt_install redis-server redis-server; }

# Every setting on the command line, so no config file of the package is read.
redis_launch() {
  local dir
  dir=$(dir_of redis)
  # shellcheck disable=SC2094  # both redis and this line only append to the log
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --dir "$dir" --appendonly yes --save "3600 1 300 100 60 10000" \
    </dev/null >>"$dir/redis.log" 2>&1 {LOCK_FD}>&- ||
    die "redis-server refused to start" "$dir/redis.log"
}

# ---------------------------------------------------------------- prometheus

prometheus_prepare() {
  apt_install prometheus prometheus
  local cfg
  cfg=$(prometheus_config)
  promtool check config "$cfg" >"$(dir_of prometheus)/promtool.log" 2>&1 ||
    die "prometheus: promtool rejects $cfg" "$(dir_of prometheus)/promtool.log"
}

# The config Prometheus runs with:
# - SETTLEGUARD_PROMETHEUS_CONFIG when set, as it is;
# - else a local copy of deploy/prometheus/prometheus.yml, which is written for Docker
#   Compose: its targets name compose services ("worker:6066"), which here are published
#   on 127.0.0.1 with the same port (the worker on SETTLEGUARD_WEB_PORT), and its
#   relative rule_files resolve through a symlink to deploy/prometheus/rules;
# - else a minimal config scraping the worker and Prometheus itself.
prometheus_config() {
  local dir cfg=$PROMETHEUS_CONFIG deploy=$ROOT/deploy/prometheus
  dir=$(dir_of prometheus)
  if [[ -n $cfg ]]; then
    [[ $cfg == /* ]] || cfg=$ROOT/$cfg
    [[ -f $cfg ]] || die "prometheus: SETTLEGUARD_PROMETHEUS_CONFIG=$PROMETHEUS_CONFIG does not exist"
    printf '%s' "$cfg"
    return
  fi
  if [[ -f $deploy/prometheus.yml ]]; then
    if [[ -d $deploy/rules ]]; then ln -sfn "$deploy/rules" "$dir/rules"; fi
    sed -E -e '/targets:/ s/"worker:[0-9]+"/"127.0.0.1:'"$WORKER_PORT"'"/g' \
      -e '/targets:/ s/"[A-Za-z][A-Za-z0-9_-]*:([0-9]+)"/"127.0.0.1:\1"/g' \
      -e '1i # Generated by scripts/services.sh from deploy/prometheus/prometheus.yml: edit that file.' \
      "$deploy/prometheus.yml" >"$dir/prometheus.yml"
  else
    cat >"$dir/prometheus.yml" <<EOF
# Generated by scripts/services.sh (there is no deploy/prometheus/prometheus.yml).
global:
  scrape_interval: 15s
  evaluation_interval: 15s
scrape_configs:
  - job_name: settleguard-worker
    static_configs:
      - targets: ["127.0.0.1:$WORKER_PORT"]
        labels:
          service: worker
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:$PROMETHEUS_PORT"]
EOF
  fi
  printf '%s' "$dir/prometheus.yml"
}

prometheus_launch() {
  local dir
  dir=$(dir_of prometheus)
  detach "$dir/prometheus.log" "$dir/prometheus.pid" prometheus \
    --config.file="$(prometheus_config)" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle
}

# ---------------------------------------------------------------- smtp

smtp_prepare() {
  "$PYTHON" -c 'import aiosmtpd' 2>/dev/null ||
    die "smtp: $PYTHON cannot import aiosmtpd: run 'make setup' (or set SETTLEGUARD_PYTHON)"
}

smtp_launch() {
  local dir
  dir=$(dir_of smtp)
  detach "$dir/smtp.log" "$dir/smtp.pid" "$PYTHON" "$ROOT/scripts/smtp_maildir.py" \
    --host 127.0.0.1 --port "$SMTP_PORT" --maildir "$dir/maildir"
}

# ---------------------------------------------------------------- commands

start_one() {
  local svc=$1 dir pid t0 url
  if is_external "$svc"; then
    url=$(user_url_of "$svc")
    external_answers "$svc" ||
      die "$svc: $(env_name_of "$svc")=$url does not answer; unset it to start a local $svc"
    say "$svc: using the external server $url ($(env_name_of "$svc")); not starting one"
    return
  fi
  dir=$(dir_of "$svc")
  mkdir -p "$dir"
  lock "$svc"
  if pid=$(own_pid "$svc"); then
    wait_ready "$svc" "$pid"
    say "$svc: already running (pid $pid) on $(own_url_of "$svc")"
    unlock
    return
  fi
  rm -f "$(pidfile_of "$svc")"
  if port_open 127.0.0.1 "$(port_of "$svc")"; then
    healthy "$svc" ||
      die "$svc: port 127.0.0.1:$(port_of "$svc") is taken by $(port_owner "$(port_of "$svc")"), which does not answer as $svc"
    say "$svc: $(own_url_of "$svc") is already served by another checkout or process ($(port_owner "$(port_of "$svc")")); using it"
    unlock
    return
  fi
  "${svc}_prepare"
  rotate_log "$(logfile_of "$svc")"
  printf '\n==== %s services.sh start\n' "$(date -Is)" >>"$(logfile_of "$svc")"
  t0=$(now_us)
  "${svc}_launch"
  pid=$(wait_pidfile "$svc")
  wait_ready "$svc" "$pid"
  t0=$(since "$t0")
  printf '==== %s services.sh: ready in %s (pid %s)\n' "$(date -Is)" "$t0" "$pid" >>"$(logfile_of "$svc")"
  say "$svc: started on $(own_url_of "$svc") in $t0 (pid $pid; data and log in $dir)"
  unlock
}

stop_one() {
  local svc=$1 pid t0 deadline
  if is_external "$svc"; then
    say "$svc: external server $(user_url_of "$svc") ($(env_name_of "$svc")); nothing to stop"
    return
  fi
  [[ -d $(dir_of "$svc") ]] || mkdir -p "$(dir_of "$svc")"
  lock "$svc"
  if ! pid=$(own_pid "$svc"); then
    rm -f "$(pidfile_of "$svc")"
    if port_open 127.0.0.1 "$(port_of "$svc")"; then
      say "$svc: not started from this checkout; $(own_url_of "$svc") is served by $(port_owner "$(port_of "$svc")"), left alone"
    else
      say "$svc: not running"
    fi
    unlock
    return
  fi
  t0=$(now_us)
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    warn "$svc: pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$(pidfile_of "$svc")"
  say "$svc: stopped (pid $pid) in $(since "$t0")"
  unlock
}

# status_one SERVICE: one line; returns 0 when the service answers
status_one() {
  local svc=$1 pid url
  if is_external "$svc"; then
    url=$(user_url_of "$svc")
    if external_answers "$svc"; then
      printf '%-11s external   %s (answers)\n' "$svc" "$url"
      return 0
    fi
    printf '%-11s external   %s (does NOT answer)\n' "$svc" "$url"
    return 1
  fi
  url=$(own_url_of "$svc")
  if pid=$(own_pid "$svc"); then
    if healthy "$svc"; then
      printf '%-11s running    %s pid %s, up %s\n' "$svc" "$url" "$pid" "$(ps -o etime= -p "$pid" | tr -d ' ')"
      return 0
    fi
    printf '%-11s starting   %s pid %s, not answering yet (log: %s)\n' "$svc" "$url" "$pid" "$(logfile_of "$svc")"
    return 1
  fi
  if port_open 127.0.0.1 "$(port_of "$svc")" && healthy "$svc"; then
    printf '%-11s running    %s served by another checkout (%s)\n' "$svc" "$url" "$(port_owner "$(port_of "$svc")")"
    return 0
  fi
  printf '%-11s stopped\n' "$svc"
  return 1
}

print_env() {
  printf 'export SETTLEGUARD_KAFKA_BOOTSTRAP=%q\n' "${USER_KAFKA:-$OWN_KAFKA}"
  printf 'export SETTLEGUARD_REDIS_URL=%q\n' "${USER_REDIS:-$OWN_REDIS}"
  printf 'export SETTLEGUARD_PROMETHEUS_URL=%q\n' "${USER_PROMETHEUS:-$OWN_PROMETHEUS}"
  printf 'export SETTLEGUARD_SMTP_HOST=%q\n' "${SETTLEGUARD_SMTP_HOST:-127.0.0.1}"
  printf 'export SETTLEGUARD_SMTP_PORT=%q\n' "$SMTP_PORT"
  printf 'export SETTLEGUARD_SMTP_MAILDIR=%q\n' "$(dir_of smtp)/maildir/new"
}

# expand SERVICE...: fills SERVICES with validated names in order; none or "all" = all
expand() {
  local name
  SERVICES=()
  (($# > 0)) || set -- all
  for name in "$@"; do
    case $name in
      all) SERVICES+=("${ALL_SERVICES[@]}") ;;
      kafka | redis | prometheus | smtp) SERVICES+=("$name") ;;
      *) die "unknown service '$name' (expected: kafka, redis, prometheus, smtp or all)" ;;
    esac
  done
  mapfile -t SERVICES < <(printf '%s\n' "${SERVICES[@]}" | awk '!seen[$0]++')
}

install_one() {  # install SERVICE without starting it: jars or Debian package
  case $1 in
    kafka) kafka_fetch_jars ;;
    redis) apt_install redis-server redis-server ;;
    prometheus) apt_install prometheus prometheus ;;
    smtp) smtp_prepare ;;
  esac
  say "$1: installed"
}

main() {
  local cmd=${1:-} svc rc=0 i
  [[ -n $cmd ]] || {
    usage >&2
    exit 2
  }
  shift
  case $cmd in
    -h | --help | help)
      usage
      return
      ;;
    env)
      print_env
      return
      ;;
    kafka-run)
      (($# > 0)) || die "kafka-run needs a class name, e.g. org.apache.kafka.tools.TopicCommand"
      kafka_fetch_jars
      kafka_tool "$@"
      return
      ;;
    start | stop | status | install) ;;
    *)
      usage >&2
      die "unknown command '$cmd'"
      ;;
  esac
  expand "$@"
  mkdir -p "$SERVICES_DIR"
  case $cmd in
    install) for svc in "${SERVICES[@]}"; do install_one "$svc"; done ;;
    start) for svc in "${SERVICES[@]}"; do start_one "$svc"; done ;;
    stop)  # stop in reverse order: the scraper and the broker before what they use
      for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do stop_one "${SERVICES[i]}"; done
      ;;
    status)
      for svc in "${SERVICES[@]}"; do status_one "$svc" || rc=3; done
      return "$rc"
      ;;
  esac
}

main "$@"
