//! Waiting for a pacemaker cluster to be done with what it does by itself:
//! after a change (the cluster operation's own script) and before a
//! `configure` reads the state of a node that is still rejoining.

use crate::sh;
use crate::shell::Script;

/// How long a rejoining node may take to settle before `configure` reads it
/// anyway (the tasks then see what is there, and say so).
const SETTLE_SECS: u64 = 120;

/// Shell lines that return once the cluster has nothing left to do, or after
/// `secs` seconds: the scheduler, run on the live CIB (`crm_simulate`, which
/// changes nothing), plans no action, and the controller on the DC is idle
/// (no transition in flight). What `crm_resource --wait` decides, looked at
/// five times a second instead of every two seconds.
pub(super) fn wait_idle(secs: u64) -> Script {
    let mut s = sh!("limit={}", secs);
    s.line(Script::lit(
        r#"end=$(( $(date +%s) + limit ))
while [ "$(date +%s)" -lt "$end" ]; do
  dc=$(crmadmin -D -q 2>&1 | tail -n 1)
  if [ -n "$dc" ] && crmadmin -q -S "$dc" 2>&1 | grep -q S_IDLE \
    && ! crm_simulate -L -S 2>/dev/null | sed -n '/^Transition Summary:/,/^Executing/p' | grep -q '^ *\* '; then
    break
  fi
  sleep 0.2
done"#,
    ));
    s
}


/// The settle script of [`crate::ops::Op::settle`] for a cluster member:
/// nothing to wait for where pacemaker is not enabled (a fresh node), not
/// running (stopped on purpose, or failed: nothing happens by itself), or
/// running for `SETTLE_SECS` or more (a member, not a rejoining one: a
/// no-op configure pays one `systemctl show`). On a member that is booting
/// or rejoining (just powered back on), it waits for the boot to finish, for
/// this node to have joined (its controller a member: `S_NOT_DC`, or the DC
/// itself) and for the cluster to be idle with nothing left to plan, at most
/// until pacemaker has run `SETTLE_SECS`: by then pacemaker has started what
/// it runs on the node (say the DRBD resource), which no task must do in its
/// place. Prints `waited MS` when that took a second or more.
pub(super) fn script() -> Script {
    let mut s = sh!("limit={}", SETTLE_SECS);
    s.line(Script::lit(
        r#"systemctl is-enabled --quiet pacemaker 2>/dev/null || exit 0
t0=$(date +%s%N)
now() { cut -d. -f1 /proc/uptime; }
# seconds since a monotonic timestamp (µs) systemd gives, "" when unknown
age() { v=$(systemctl show -p "$@" --value 2>/dev/null); [ -n "$v" ] && [ "$v" -gt 0 ] && echo $(( $(now) - v / 1000000 )); }
# a node whose systemd started less than `limit` s ago: let its boot finish
booted=$(age UserspaceTimestampMonotonic)
if [ -n "$booted" ] && [ "$booted" -lt "$limit" ]; then
  timeout $(( limit - booted )) systemctl is-system-running --wait >/dev/null 2>&1
fi
systemctl is-active --quiet pacemaker || exit 0
# a member for `limit` s or more is not rejoining: nothing to wait for
started=$(age ActiveEnterTimestampMonotonic pacemaker)
if [ -z "$started" ] || [ "$started" -ge "$limit" ]; then exit 0; fi
end=$(( $(date +%s) + limit - started ))
while [ "$(date +%s)" -lt "$end" ]; do
  me=$(crm_node -n 2>/dev/null)
  dc=$(crmadmin -D -q 2>&1 | tail -n 1)
  if [ -n "$me" ] && [ -n "$dc" ] \
    && crmadmin -q -S "$me" 2>&1 | grep -q -e S_NOT_DC -e S_IDLE \
    && crmadmin -q -S "$dc" 2>&1 | grep -q S_IDLE \
    && ! crm_simulate -L -S 2>/dev/null | sed -n '/^Transition Summary:/,/^Executing/p' | grep -q '^ *\* '; then
    break
  fi
  sleep 0.2
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
if [ "$ms" -ge 1000 ]; then echo "waited $ms"; fi"#,
    ));
    s
}
