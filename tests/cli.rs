//! The `starling` binary as an operator uses it: `generate-config`, `check-config` on good and
//! bad files, the run path's config errors, and exit statuses (0 ok, 1 error, 2 usage).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use starling::config::Config;

fn starling(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_starling"))
        .args(args)
        // A RUST_LOG from the environment must not change what these tests see.
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// Writes `text` to a file of its own under Cargo's scratch directory for integration tests.
fn config_file(name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `check-config` on a file holding `text`; returns the output and the file's path.
fn check(name: &str, text: &str) -> (Output, String) {
    let path = config_file(name, text);
    let path = path.to_str().unwrap().to_owned();
    (starling(&["check-config", &path]), path)
}

#[test]
fn generate_config_prints_the_defaults_and_check_config_accepts_them() {
    let output = starling(&["generate-config"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert_eq!(text.parse::<Config>().unwrap(), Config::default());
    assert!(text.contains("[[listeners]]") && text.contains("[tuning]"));

    let (output, path) = check("generated", &text);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.starts_with(&format!("{path}: ok\n")), "{out}");
    assert!(
        out.contains("listeners: default (tcp 127.0.0.1:1883)"),
        "{out}"
    );
    assert!(out.contains("shards: "), "{out}");
    assert!(out.contains("on CPUs "), "{out}");
    assert!(stderr(&output).is_empty());
}

#[test]
fn generate_config_markdown_is_the_reference() {
    let output = starling(&["generate-config", "--markdown"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains("#### `tuning.ring_depth`"), "{text}");
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    assert!(
        docs.contains(&text),
        "docs/configuration.md embeds the reference"
    );
}

#[test]
fn check_config_summarises_a_good_file() {
    let (output, path) = check(
        "good",
        "[[listeners]]\nname = \"public\"\nbind = \"0.0.0.0:1883\"\n\
         [[listeners]]\nbind = \"[::1]:1884\"\n[tuning]\nshards = 1\n",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.starts_with(&format!("{path}: ok\n")), "{out}");
    assert!(
        out.contains("listeners: public (tcp 0.0.0.0:1883), [::1]:1884 (tcp [::1]:1884)"),
        "{out}"
    );
    assert!(out.contains("shards: 1 on CPUs "), "{out}");
    assert!(out.contains("locked memory: about 512 KiB"), "{out}");
}

#[test]
fn check_config_accepts_every_tuning_profile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning");
    for name in ["default.toml", "low-latency.toml", "many-connections.toml"] {
        let path = dir.join(name);
        let output = starling(&["check-config", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
    }
}

#[test]
fn an_unknown_key_is_named_with_its_path_and_line() {
    let (output, path) = check(
        "unknown-key",
        "[mqtt]\nretain_available = true\n[tuning]\nring_depht = 256\n",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    let err = stderr(&output);
    assert!(
        err.starts_with(&format!(
            "starling: {path}: tuning.ring_depht: unknown key `ring_depht`"
        )),
        "{err}"
    );
    assert!(
        err.contains("`ring_depth`"),
        "lists the allowed keys: {err}"
    );
    assert!(err.contains("line 4, column 1"), "{err}");
}

#[test]
fn an_invalid_value_is_named_with_what_is_allowed() {
    let (output, path) = check("bad-value", "[tuning]\nring_depth = 3\n");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "starling: {path}: tuning.ring_depth: must be a power of two between 8 and 32768, \
             got 3\n"
        )
    );

    let (output, _) = check(
        "tls",
        "[[listeners]]\nbind = \"0.0.0.0:8883\"\ntransport = \"tls\"\n",
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("listeners[0].transport: \"tls\" is not supported yet"),
        "{err}"
    );
}

#[test]
fn a_syntax_error_gives_line_and_column() {
    let (output, path) = check("syntax", "[mqtt]\nmaximum_qos = 1\n[tuning\n");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with(&format!(
            "starling: {path}: TOML syntax error at line 3, column "
        )),
        "{err}"
    );
}

#[test]
fn a_missing_file_is_an_error() {
    let output = starling(&["check-config", "/nonexistent/starling.toml"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with("starling: /nonexistent/starling.toml: cannot read"),
        "{err}"
    );
}

#[test]
fn run_refuses_a_bad_config_before_starting() {
    let path = config_file("run-bad", "[mqtt]\nmaximum_qos = 3\n");
    let output = starling(&["--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("mqtt.maximum_qos: must be 0, 1 or 2, got 3"),
        "{err}"
    );

    let output = starling(&["run", "--shards", "257"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with("starling: tuning.shards: must be between 0 and 256, got 257"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_with_status_2() {
    for args in [
        &["--listen", "localhost:1883"][..],
        &["--listen", "0.0.0.0:0"],
        &["check-config"],
        &["--shards", "2", "check-config", "x.toml"],
        &["no-such-command"],
    ] {
        let output = starling(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = starling(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).starts_with("starling "));
}
