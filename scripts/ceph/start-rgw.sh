#!/usr/bin/env bash
# A throw-away single-node Ceph cluster with a RADOS gateway (S3) on 127.0.0.1, for tests,
# benches and trying `kb serve --blobs s3://...` locally. One ceph-mon, one ceph-osd on memstore
# (objects in RAM, nothing on disk but logs and the mon's small store), radosgw with the beast
# frontend on a free port, an S3 user. Prints ONE JSON line on stdout once the gateway answers:
#   {"endpoint":"http://127.0.0.1:PORT","accessKeyId":"...","secretAccessKey":"...","region":"default","dir":"/tmp/..."}
# Stop and delete it with scripts/ceph/stop-rgw.sh DIR.
#
# Cluster auth is cephx with one keyring holding every daemon's key (radosgw does not connect to
# a cluster with auth "none"); S3 requests are authenticated by RGW itself (SigV4 signatures
# checked against the user's secret key), which is what the tests exercise.
#
# Options: --dir DIR (default: a new mktemp dir), --watch-pid PID (stop and delete the cluster
# when PID exits: a test runner killed with -9 does not leave daemons behind),
# --memstore-mb N (OSD capacity in RAM, default 2048).
# Needs the Debian packages ceph-mon ceph-osd radosgw (and python3 for the free-port pick).
set -euo pipefail
DIR=""
WATCH_PID=""
MEM_MB=2048
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="$2"; shift 2 ;;
    --watch-pid) WATCH_PID="$2"; shift 2 ;;
    --memstore-mb) MEM_MB="$2"; shift 2 ;;
    *) echo "start-rgw.sh: unknown option \"$1\" (use --dir DIR, --watch-pid PID, --memstore-mb N)" >&2; exit 2 ;;
  esac
done
for p in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool; do
  command -v "$p" >/dev/null || { echo "start-rgw.sh: $p not found (apt-get install -y ceph-mon ceph-osd radosgw)" >&2; exit 3; }
done
HERE="$(cd "$(dirname "$0")" && pwd)"
[ -n "$DIR" ] || DIR="$(mktemp -d /tmp/sedna-rgw.XXXXXX)"
mkdir -p "$DIR"/{run,log,mon,osd,rgw}
DIR="$(cd "$DIR" && pwd)"

# two free loopback ports, picked by the kernel (a small race with other binders is possible;
# the daemons then fail to bind and this script fails, loudly)
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
MON_PORT="$(free_port)"
RGW_PORT="$(free_port)"
while [ "$RGW_PORT" = "$MON_PORT" ]; do RGW_PORT="$(free_port)"; done
FSID="$(cat /proc/sys/kernel/random/uuid)"
CONF="$DIR/ceph.conf"
cat >"$CONF" <<CONF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $DIR/keyring
mon data avail warn = 1
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
mon data = $DIR/mon/\$cluster-\$id
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $((MEM_MB * 1024 * 1024))
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd max object name len = 256
osd max object namespace len = 64
CONF
cat >>"$CONF" <<CONF
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $DIR/rgw
rgw thread pool size = 64
CONF

log() { echo "start-rgw.sh: $*" >&2; }
fail() { log "$*; logs in $DIR/log"; "$HERE/stop-rgw.sh" --keep "$DIR" >/dev/null 2>&1 || true; exit 1; }

K="$DIR/keyring"
ceph-authtool --create-keyring "$K" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$K" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
# the first OSD of a new cluster is osd.0
ceph-authtool "$K" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
ceph-authtool "$K" --gen-key -n client.rgw.a --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
monmaptool --create --clobber --addv a "[v2:127.0.0.1:$MON_PORT]" --fsid "$FSID" "$DIR/monmap" >/dev/null
ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$K" >"$DIR/log/mkfs-mon.out" 2>&1 || fail "ceph-mon --mkfs failed"
ceph-mon -c "$CONF" -i a 2>>"$DIR/log/daemons.err" || fail "ceph-mon did not start"
C="ceph -c $CONF --connect-timeout 60"
OSD_UUID="$(cat /proc/sys/kernel/random/uuid)"
OSD_ID="$($C osd new "$OSD_UUID" 2>>"$DIR/log/ceph-cli.err")" || fail "ceph osd new failed"
mkdir -p "$DIR/osd/ceph-$OSD_ID"
ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" >"$DIR/log/mkfs-osd.out" 2>&1 || fail "ceph-osd --mkfs failed"
ceph-osd -c "$CONF" -i "$OSD_ID" 2>>"$DIR/log/daemons.err" || fail "ceph-osd did not start"
radosgw -c "$CONF" -n client.rgw.a --rgw-init-timeout 120 2>>"$DIR/log/daemons.err" || fail "radosgw did not start"

if [ -n "$WATCH_PID" ]; then
  # detached watchdog: removes the cluster when the watched process is gone
  setsid bash -c "while kill -0 $WATCH_PID 2>/dev/null && [ -d '$DIR' ]; do sleep 2; done; '$HERE/stop-rgw.sh' '$DIR'" \
    </dev/null >/dev/null 2>&1 &
fi

# ready when the gateway answers HTTP (an anonymous ListBuckets gets an S3 XML reply)
for _ in $(seq 1 240); do
  if node -e "require('http').get('http://127.0.0.1:$RGW_PORT/',r=>process.exit(r.statusCode?0:1)).on('error',()=>process.exit(1))" 2>/dev/null; then
    # the user (radosgw-admin talks to RADOS directly: works as soon as the OSD is up)
    # keys chosen here (random), so nothing has to be parsed out of radosgw-admin's JSON
    ACCESS="$(head -c 10 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)"
    SECRET="$(head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    timeout 120 radosgw-admin -c "$CONF" -n client.admin user create --uid=sedna --display-name=sedna \
      --access-key "$ACCESS" --secret "$SECRET" >/dev/null 2>>"$DIR/log/radosgw-admin.err" \
      || fail "radosgw-admin user create failed"
    printf '{"endpoint":"http://127.0.0.1:%s","accessKeyId":"%s","secretAccessKey":"%s","region":"default","dir":"%s"}\n' \
      "$RGW_PORT" "$ACCESS" "$SECRET" "$DIR"
    exit 0
  fi
  sleep 0.5
done
fail "radosgw did not answer on 127.0.0.1:$RGW_PORT within 120 s"
