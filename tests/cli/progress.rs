//! `fit`'s progress on a terminal: a bar per initialisation instead of the plain
//! lines (those are checked in `fit.rs`), nothing but warnings with `--quiet`. The
//! binary runs on a pseudo-terminal made by util-linux `script`.

use std::path::Path;
use std::process::Command;

use super::support::*;

/// What the binary wrote to its terminal, or None where `script` is missing.
fn on_a_terminal(args: &[&str]) -> Option<String> {
    let binary = env!("CARGO_BIN_EXE_gmm-stream");
    let line = std::iter::once(binary)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("RUST_LOG")
        .output();
    match out {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) => {
            eprintln!("skipped: cannot run `script` for a pseudo-terminal: {e}");
            None
        }
    }
}

fn fit_args<'a>(input: &'a Path, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["fit", "-i", arg(input), "-k", "2", "-o", arg(out)];
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_terminal_gets_a_bar_per_initialisation() {
    let dir = tempdir();
    let input = write(dir.path(), "p.csv", csv_text(&two_clusters(), false));
    let out = dir.path().join("m.json");
    let Some(screen) = on_a_terminal(&fit_args(&input, &out, &["--n-init", "2"])) else {
        return;
    };
    for needle in [
        "init 1/2 ",
        "init 2/2 ",
        " iterations, mean log-likelihood -",
        "converged after ",
    ] {
        assert!(screen.contains(needle), "{needle:?} not in {screen:?}");
    }
    assert!(
        !screen.contains("iteration 1: mean"),
        "no plain lines: {screen:?}"
    );
    assert!(out.exists());
}

#[test]
fn quiet_shows_no_bar_but_still_warns() {
    let dir = tempdir();
    let input = write(dir.path(), "p.csv", csv_text(&two_clusters(), false));
    let out = dir.path().join("m.json");
    let args = fit_args(&input, &out, &["-q", "--max-iter", "1", "--tol", "0"]);
    let Some(screen) = on_a_terminal(&args) else {
        return;
    };
    assert_eq!(
        screen.trim_end(),
        "gmm-stream: warning: did not converge after 1 iterations; increase --max-iter or --tol"
    );
}
