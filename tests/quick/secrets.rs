//! Secrets never show: a value marked secret (scenario `secrets:`) is used in a
//! template and echoed by a failing command, and every byte labctl prints with
//! `--diff`, `-v`/`-vv` and `--json` is searched for it — also after the secret is
//! rotated, when the node's old file still holds the previous value.
//!
//! (The `user` operation's password is a secret too, but it runs `useradd` on the
//! node, and the test node is this machine: it is covered by the runner's unit
//! tests, not here.)

use crate::common;
use common::{stderr, stdout, Project};

const OLD: &str = "Tr0ub4dor-and-3";
const NEW: &str = "correct-horse-battery-staple";

fn scenario(password: &str) -> String {
    format!(
        r#"
name: secrets
secrets: [app_password]
vars: {{app_password: "{password}"}}
plays:
  - hosts: web
    tasks:
      - name: app config
        template: {{src: app.conf.j2, dest: "{{{{ root }}}}/app.conf", mode: "0600"}}
      - name: leaky command
        command: "echo the password is {{{{ app_password }}}}; echo {{{{ app_password }}}} >&2; exit 1"
"#
    )
}

/// Every run's stdout and stderr, for the search.
fn run_all_ways(p: &Project) -> String {
    let mut all = String::new();
    for args in [
        &["configure", "scenario.yaml", "--check", "--diff", "-v"][..],
        &["configure", "scenario.yaml", "--check", "--diff", "--json"][..],
        &["configure", "scenario.yaml", "--diff", "-vv", "--json"][..],
        &["configure", "scenario.yaml", "--diff", "-vv"][..],
    ] {
        let o = p.labctl(args);
        assert_ne!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        all += &stdout(&o);
        all += &stderr(&o);
    }
    all
}

#[test]
fn secret_values_never_appear_in_any_output() {
    let p = Project::new(1);
    p.write(
        "templates/app.conf.j2",
        "user = app\npassword = {{ app_password }}\nport = 8080\n",
    );
    p.write("scenario.yaml", &scenario(OLD));
    let out = run_all_ways(&p);
    assert_eq!(
        p.read("root/n1/app.conf"),
        format!("user = app\npassword = {OLD}\nport = 8080\n"),
        "the secret is really used on the node"
    );
    assert!(
        out.contains("the password is ********"),
        "the failing command's output is shown, masked: {out}"
    );
    assert!(!out.contains(OLD), "the secret leaked:\n{out}");

    // rotate the secret: the node's file still holds the old one, which is no
    // longer a variable's value; a diff must not show it either
    p.write("scenario.yaml", &scenario(NEW));
    let out = run_all_ways(&p);
    assert!(p.read("root/n1/app.conf").contains(NEW));
    assert!(
        out.contains("(content not shown: the file holds a secret)"),
        "the file change is reported without its content: {out}"
    );
    assert!(!out.contains(NEW), "the new secret leaked:\n{out}");
    assert!(!out.contains(OLD), "the old secret leaked:\n{out}");
}

#[test]
fn a_secret_in_a_check_is_masked_in_lists_json_and_errors() {
    let p = Project::new(1);
    p.write(
        "verify.yaml",
        &format!(
            "name: v\nsecrets: [token]\nvars: {{token: \"{NEW}\"}}\nverify:\n  - http: {{url: \"http://127.0.0.1:1/?token={{{{ token }}}}\", nodes: [n1]}}\n"
        ),
    );
    let mut all = String::new();
    for args in [
        &["verify", "verify.yaml", "--list"][..],
        &["verify", "verify.yaml", "--list", "--json"][..],
        &["verify", "verify.yaml", "--json"][..],
        &["verify", "verify.yaml"][..],
    ] {
        let o = p.labctl(args);
        all += &stdout(&o);
        all += &stderr(&o);
    }
    assert!(
        all.contains("token=********"),
        "the check is shown, masked: {all}"
    );
    assert!(!all.contains(NEW), "the secret leaked:\n{all}");
    // a bad check: the error message names the value, masked
    p.write(
        "verify.yaml",
        &format!(
            "name: v\nsecrets: [token]\nvars: {{token: \"{NEW}\"}}\nverify:\n  - http: {{url: \"ftp://{{{{ token }}}}/\"}}\n"
        ),
    );
    let o = p.labctl(&["verify", "verify.yaml"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains(NEW),
        "the secret leaked: {}",
        stderr(&o)
    );
}
