//! `gfs2`: one file system, mounted on several nodes at once (GFS2 over
//! dual-primary DRBD, scenario 07): what one node writes, the others read
//! at once.
//!
//! ```yaml
//! - gfs2: {dir: /var/www/html, nodes: [nodo1, nodo2]}
//! ```
//!
//! Over SSH as root, on each node in turn: `dir` must be a GFS2 mount; the
//! node writes a file with a unique token into `dir`; every other node must
//! read that token from it right away (no wait, no retry: the cluster's
//! locks make the write visible). The files are removed at the end.

use super::{Check, Ctx, Outcome, Prepare, PrepareCtx};
use crate::inventory::Node;
use crate::sh;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `gfs2:` check as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The mount point of the shared file system.
    pub dir: String,
    /// The nodes that mount it (at least two).
    pub nodes: Vec<String>,
}

/// A prepared `gfs2` check.
#[derive(Debug)]
pub struct Plan {
    dir: String,
    nodes: Vec<Node>,
}

impl Prepare for Spec {
    fn prepare(&self, ctx: &PrepareCtx) -> anyhow::Result<Box<dyn Check>> {
        let dir = self.dir.trim().trim_end_matches('/');
        if !dir.starts_with('/') {
            return Err(ctx.err(format!(
                "gfs2: `dir: {dir}` is not an absolute path\n  fix: the mount point of the shared file system, e.g. dir: /var/www/html"
            )));
        }
        let names = ctx.nodes("gfs2: nodes", &self.nodes)?;
        if names.len() < 2 {
            return Err(ctx.err(
                "gfs2: `nodes:` needs at least two nodes (one writes, the others read)\n  fix: e.g. nodes: [nodo1, nodo2]",
            ));
        }
        Ok(Box::new(Plan {
            dir: dir.to_string(),
            nodes: names
                .iter()
                .map(|n| ctx.node("gfs2: nodes", n))
                .collect::<anyhow::Result<_>>()?,
        }))
    }
}

/// Exit code of the mount test when `dir` is not GFS2.
const NOT_GFS2: i32 = 3;

impl Plan {
    fn file(&self, writer: &str, token: &str) -> String {
        format!("{}/.labctl-gfs2-{writer}-{token}", self.dir)
    }
}

impl Check for Plan {
    fn summary(&self) -> String {
        let nodes = Node::names(&self.nodes);
        format!("gfs2 {} shared by {nodes}", self.dir)
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(120)
    }

    fn run(&self, ctx: &Ctx) -> Outcome {
        let mut sessions = Vec::new();
        for n in &self.nodes {
            match ctx.ssh(n) {
                Ok(s) => sessions.push(s),
                Err(e) => return Outcome::fail(e),
            }
        }
        // every node mounts dir as GFS2
        for (i, n) in self.nodes.iter().enumerate() {
            let script = sh!(
                "t=$(findmnt -n -o FSTYPE --mountpoint {}) || t=none\n[ \"$t\" = gfs2 ] || {{ echo \"$t\"; exit 3; }}",
                self.dir
            );
            match ctx.remote(&mut sessions[i], &script) {
                Ok(o) if o.rc == 0 => {}
                Ok(o) if o.rc == NOT_GFS2 => {
                    return Outcome::fail(format!(
                        "{} on {}: not a GFS2 mount (found: {})\n  fix: see `crm_mon -1`: pacemaker mounts it (the Filesystem clone, after dlm and the DRBD promotion)",
                        self.dir,
                        n.name,
                        o.stdout.trim()
                    ))
                }
                Ok(o) => return Outcome::fail(cannot(&n.name, "read the mounts", &o)),
                Err(e) => return Outcome::fail(e),
            }
        }
        let token = format!("{:016x}", rand::random::<u64>());
        let mut seen = Vec::new();
        let mut outcome = None;
        'writers: for (w, writer) in self.nodes.iter().enumerate() {
            let file = self.file(&writer.name, &token);
            let write = sh!("printf '%s\\n' {} > {} && sync {}", token, file, file);
            match ctx.remote(&mut sessions[w], &write) {
                Ok(o) if o.rc == 0 => {}
                Ok(o) => {
                    let what = format!("write {file}");
                    outcome = Some(Outcome::fail(cannot(&writer.name, &what, &o)));
                    break;
                }
                Err(e) => {
                    outcome = Some(Outcome::fail(e));
                    break;
                }
            }
            for (r, reader) in self.nodes.iter().enumerate() {
                if r == w {
                    continue;
                }
                let read = sh!("cat {} 2>&1", file);
                match ctx.remote(&mut sessions[r], &read) {
                    Ok(o) if o.rc == 0 && o.stdout.trim() == token => {
                        seen.push(format!("{} → {}", writer.name, reader.name));
                    }
                    Ok(o) => {
                        outcome = Some(Outcome::fail(format!(
                            "{} wrote {file}, but {} reads {:?} there: the nodes do not share one file system\n  fix: both must mount the same GFS2 on a dual-primary DRBD (`drbdadm role` says Primary/Primary, `mount -t gfs2` on both)",
                            writer.name,
                            reader.name,
                            crate::text::last_lines(&o.stdout, 1)
                        )));
                        break 'writers;
                    }
                    Err(e) => {
                        outcome = Some(Outcome::fail(e));
                        break 'writers;
                    }
                }
            }
        }
        // the token files go, whatever happened
        for (i, n) in self.nodes.iter().enumerate() {
            let _ = ctx.remote(&mut sessions[i], &sh!("rm -f {}", self.file(&n.name, &token)));
        }
        outcome.unwrap_or_else(|| {
            Outcome::pass(format!(
                "{} is GFS2 on every node; a write was read at once: {}",
                self.dir,
                seen.join(", ")
            ))
        })
    }
}

/// `node` could not do `what`: the remote command's exit code and last lines.
fn cannot(node: &str, what: &str, o: &crate::transport::Output) -> String {
    format!(
        "{node}: cannot {what} (exit code {}): {}",
        o.rc,
        crate::text::last_lines(&o.stderr, 2)
    )
}

#[cfg(test)]
mod tests {
    use crate::checks::test_prepare as prepare;

    #[test]
    fn prepares_from_the_registry() {
        crate::checks::assert_prepares(
            "- gfs2: {dir: /var/www/html/, nodes: [nodo1, nodo2]}\n",
            "gfs2",
            "gfs2 /var/www/html shared by nodo1, nodo2",
        );
    }

    #[test]
    fn refuses_one_node_and_a_relative_dir() {
        let e = prepare("- gfs2: {dir: /var/www/html, nodes: [nodo1]}\n").unwrap_err();
        assert!(e.to_string().contains("at least two nodes"), "{e}");
        let e = prepare("- gfs2: {dir: www, nodes: [nodo1, nodo2]}\n").unwrap_err();
        assert!(e.to_string().contains("not an absolute path"), "{e}");
    }
}
