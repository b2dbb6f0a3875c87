//! Tests of the config layer as a whole: defaults, the generated template, the reference in
//! `docs/configuration.md`, the profiles in `tuning/`, and the errors an operator sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::reference::{KEYS, SECTIONS};
use super::template::{default_values, reference_markdown};
use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    text.parse()
}

/// The error of `text`, checked to be about `key`, as printed.
fn error_about(text: &str, key: &str) -> String {
    let err = parse(text).expect_err(text);
    assert_eq!(err.key(), Some(key), "{err}");
    err.to_string()
}

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

#[test]
fn defaults_are_valid() {
    let config = Config::default();
    assert_eq!(parse("").unwrap(), config);
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].name, "default");
    assert_eq!(config.listeners[0].bind, "127.0.0.1:1883".parse().unwrap());
    assert_eq!(config.listeners[0].transport, Transport::Tcp);
    assert_eq!(config.mqtt.max_packet_size_bytes.get(), 1 << 20);
    assert_eq!(config.mqtt.receive_maximum.get(), 128);
    assert_eq!(config.mqtt.maximum_qos, QoS::ExactlyOnce);
    assert_eq!(config.mqtt.max_session_expiry_secs, 7 * 24 * 3600);
    assert_eq!(config.tuning.shards, None);
    assert!(config.tuning.cpus.is_empty());
    assert_eq!(config.tuning.ring_depth, 256);
    assert_eq!(config.tuning.io_memory_bytes, 128 * 1024);
    assert_eq!(config.tuning.spin_before_park, None);
    assert_eq!(config.tuning.preempt_timer, Duration::from_millis(2));
    assert_eq!(config.tuning.max_connections_per_shard, None);
    assert_eq!(config.log.format, LogFormat::Human);
    assert_eq!(config.log.level, "info");
}

#[test]
fn generated_config_parses_to_the_defaults() {
    let text = default_config_toml();
    assert_eq!(parse(&text).unwrap(), Config::default());
}

#[test]
fn generated_config_sets_every_schema_key_in_its_section() {
    let text = default_config_toml();
    for (path, _) in default_values() {
        let (section, key) = path.split_once('.').unwrap();
        let header = SECTIONS.iter().find(|s| s.name == section).unwrap().header;
        let body = text
            .split_once(&format!("\n{header}\n"))
            .unwrap_or_else(|| panic!("no {header} table"))
            .1;
        // The section ends where the next table header starts.
        let body = body.split("\n[").next().unwrap();
        assert!(
            body.lines().any(|l| l.starts_with(&format!("{key} = "))),
            "{path} is not set in the generated config"
        );
    }
}

#[test]
fn every_schema_key_is_documented_and_every_documented_key_exists() {
    let schema: BTreeSet<String> = default_values().into_iter().map(|(p, _)| p).collect();
    let documented: BTreeSet<String> = KEYS.iter().map(|k| k.path.to_owned()).collect();
    assert_eq!(schema, documented);
    assert_eq!(documented.len(), KEYS.len(), "a key is documented twice");
    for key in KEYS {
        assert!(
            SECTIONS.iter().any(|s| s.name == key.section()),
            "{} has no section",
            key.path
        );
    }
}

const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE";
const END: &str = "<!-- END GENERATED REFERENCE -->";

/// `docs/configuration.md` embeds the generated reference between two markers. Run with
/// `STARLING_UPDATE_DOCS=1` to rewrite it after changing `reference.rs` or a default.
#[test]
fn docs_reference_is_current() {
    let path = repo_path("docs/configuration.md");
    let mut doc = std::fs::read_to_string(&path).unwrap();
    let start = doc.find(BEGIN).expect("begin marker");
    let start = start + doc[start..].find('\n').unwrap() + 1;
    let end = doc.find(END).expect("end marker");
    let expected = format!("\n{}", reference_markdown());
    if doc[start..end] != expected {
        if std::env::var_os("STARLING_UPDATE_DOCS").is_some() {
            let updated = format!("{}{expected}{}", &doc[..start], &doc[end..]);
            std::fs::write(&path, &updated).unwrap();
            doc = updated;
        } else {
            panic!(
                "docs/configuration.md is out of date: run \
                 `STARLING_UPDATE_DOCS=1 cargo test -p starling --lib config::` to regenerate"
            );
        }
    }
    for key in KEYS {
        assert!(
            doc.contains(&format!("`{}`", key.path)),
            "{} undocumented",
            key.path
        );
    }
}

#[test]
fn every_tuning_profile_is_a_valid_config() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo_path("tuning")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = Config::load_file(&path, &Overrides::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let is_default = path.file_name().is_some_and(|n| n == "default.toml");
            assert_eq!(
                config == Config::default(),
                is_default,
                "{}",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected the profiles in tuning/");
}

#[test]
fn unknown_keys_name_the_path_and_the_allowed_keys() {
    let text = error_about("[tuning]\nring_depht = 3\n", "tuning.ring_depht");
    assert!(text.contains("unknown key `ring_depht`"), "{text}");
    assert!(
        text.contains("`ring_depth`") && text.contains("`shards`"),
        "{text}"
    );
    assert!(text.contains("line 2, column 1"), "{text}");

    let text = error_about("[mqt]\n", "mqt");
    assert!(
        text.contains("`mqtt`") && text.contains("`listeners`"),
        "{text}"
    );

    let text = error_about(
        "[[listeners]]\nbind = \"127.0.0.1:1883\"\n[[listeners]]\nbindd = \"x\"\n",
        "listeners[1].bindd",
    );
    assert!(text.contains("`bind`"), "{text}");
}

#[test]
fn wrong_types_name_the_key_in_toml_words() {
    let text = error_about(
        "[mqtt]\nretain_available = \"yes\"\n",
        "mqtt.retain_available",
    );
    assert!(text.contains("expected a boolean"), "{text}");
    let text = error_about("[tuning]\nring_depth = \"x\"\n", "tuning.ring_depth");
    assert!(text.contains("expected an integer"), "{text}");
    let text = error_about("tuning = 3\n", "tuning");
    assert!(text.contains("expected a table"), "{text}");
}

#[test]
fn syntax_errors_give_line_and_column() {
    let err = parse("[mqtt]\nretain_available = true\n[tuning\n").unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Syntax {
            location: Location { line: 3, .. },
            ..
        }
    ));
    assert!(
        err.to_string()
            .starts_with("TOML syntax error at line 3, column"),
        "{err}"
    );
    let err = parse("[mqtt]\nmaximum_qos = 1\nmaximum_qos = 2\n").unwrap_err();
    assert!(err.to_string().contains("line 3"), "{err}");
}

#[test]
fn ring_depth_must_be_a_power_of_two() {
    for bad in [3, 4, 100, 65536] {
        let text = error_about(
            &format!("[tuning]\nring_depth = {bad}"),
            "tuning.ring_depth",
        );
        assert_eq!(
            text,
            format!("tuning.ring_depth: must be a power of two between 8 and 32768, got {bad}")
        );
    }
    let config = parse("[tuning]\nring_depth = 1024").unwrap();
    assert_eq!(config.tuning.ring_depth, 1024);
}

#[test]
fn io_memory_must_be_whole_pages_above_glommios_floor() {
    for bad in [4096, 70_000] {
        let text = error_about(
            &format!("[tuning]\nio_memory_bytes = {bad}"),
            "tuning.io_memory_bytes",
        );
        assert!(text.contains("multiple of 4096 between 65536"), "{text}");
    }
}

#[test]
fn only_tcp_is_supported_yet() {
    for transport in ["tls", "ws", "wss"] {
        let text = error_about(
            &format!("[[listeners]]\ntransport = \"{transport}\""),
            "listeners[0].transport",
        );
        assert!(text.contains("is not supported yet"), "{text}");
    }
    let text = error_about(
        "[[listeners]]\ntransport = \"quic\"",
        "listeners[0].transport",
    );
    assert!(text.contains("must be \"tcp\""), "{text}");
}

#[test]
fn bind_addresses_are_ip_and_fixed_port() {
    let text = error_about(
        "[[listeners]]\nbind = \"localhost:1883\"",
        "listeners[0].bind",
    );
    assert!(text.contains("host names are not resolved"), "{text}");
    let text = error_about("[[listeners]]\nbind = \"0.0.0.0\"", "listeners[0].bind");
    assert!(text.contains("IP:PORT"), "{text}");
    let text = error_about("[[listeners]]\nbind = \"0.0.0.0:0\"", "listeners[0].bind");
    assert!(text.contains("port 0 is not allowed"), "{text}");
    let config = parse("[[listeners]]\nbind = \"[::]:8883\"").unwrap();
    assert_eq!(config.listeners[0].bind, "[::]:8883".parse().unwrap());
}

#[test]
fn listeners_are_unique_and_unnamed_ones_are_called_by_their_address() {
    let two = |a: &str, b: &str| format!("[[listeners]]\n{a}\n[[listeners]]\n{b}\n");
    let config = parse(&two("bind = \"0.0.0.0:1883\"", "bind = \"0.0.0.0:1884\"")).unwrap();
    assert_eq!(config.listeners[0].name, "0.0.0.0:1883");
    assert_eq!(config.listeners[1].name, "0.0.0.0:1884");

    let text = error_about(
        &two(
            "name = \"a\"\nbind = \"0.0.0.0:1883\"",
            "name = \"a\"\nbind = \"0.0.0.0:1884\"",
        ),
        "listeners[1].name",
    );
    assert!(text.contains("already the name of listeners[0]"), "{text}");

    for (a, b) in [
        ("0.0.0.0:1883", "0.0.0.0:1883"),
        ("0.0.0.0:1883", "127.0.0.1:1883"),
        ("[::]:1883", "127.0.0.1:1883"),
        ("127.0.0.1:1883", "[::]:1883"),
    ] {
        let text = error_about(
            &two(&format!("bind = \"{a}\""), &format!("bind = \"{b}\"")),
            "listeners[1].bind",
        );
        assert!(text.contains("overlaps listeners[0]"), "{text}");
    }
    for (a, b) in [
        ("0.0.0.0:1883", "[::1]:1883"),
        ("127.0.0.1:1883", "127.0.0.2:1883"),
    ] {
        parse(&two(&format!("bind = \"{a}\""), &format!("bind = \"{b}\""))).unwrap();
    }

    let text = error_about("[[listeners]]\nname = \"has space\"", "listeners[0].name");
    assert!(text.contains("letters, digits"), "{text}");
    error_about("listeners = []", "listeners");
}

#[test]
fn mqtt_values_are_checked_against_the_spec() {
    let text = error_about(
        "[mqtt]\nmax_packet_size_bytes = 15",
        "mqtt.max_packet_size_bytes",
    );
    assert_eq!(
        text,
        "mqtt.max_packet_size_bytes: must be between 16 and 268435460, got 15"
    );
    error_about(
        "[mqtt]\nmax_packet_size_bytes = 268435461",
        "mqtt.max_packet_size_bytes",
    );
    error_about("[mqtt]\nreceive_maximum = 0", "mqtt.receive_maximum");
    error_about("[mqtt]\nreceive_maximum = 65536", "mqtt.receive_maximum");
    error_about(
        "[mqtt]\nmax_inflight_messages = 0",
        "mqtt.max_inflight_messages",
    );
    let text = error_about("[mqtt]\nmaximum_qos = 3", "mqtt.maximum_qos");
    assert!(text.contains("must be 0, 1 or 2, got 3"), "{text}");
    let text = error_about(
        "[mqtt]\nmax_client_id_bytes = 22",
        "mqtt.max_client_id_bytes",
    );
    assert!(text.contains("at least 23"), "{text}");
    let text = error_about(
        "[mqtt]\nshared_subscription_strategy = \"sticky\"",
        "mqtt.shared_subscription_strategy",
    );
    assert!(text.contains("\"round_robin\", \"random\""), "{text}");
    error_about(
        "[mqtt]\nmax_session_expiry_secs = -1",
        "mqtt.max_session_expiry_secs",
    );
    error_about(
        "[mqtt]\nconnect_timeout_secs = 0",
        "mqtt.connect_timeout_secs",
    );

    let config =
        parse("[mqtt]\nmaximum_qos = 1\nshared_subscription_strategy = \"random\"\n").unwrap();
    assert_eq!(config.mqtt.maximum_qos, QoS::AtLeastOnce);
    assert_eq!(
        config.mqtt.shared_subscription_strategy,
        SharedSubscriptionStrategy::Random
    );
}

#[test]
fn a_session_queue_holds_at_least_one_largest_message() {
    let text = error_about(
        "[mqtt]\nmax_packet_size_bytes = 2097152\nmax_queued_bytes = 1048576",
        "mqtt.max_queued_bytes",
    );
    assert!(
        text.contains("at least mqtt.max_packet_size_bytes (2097152)"),
        "{text}"
    );
    let config = parse("[mqtt]\nmax_packet_size_bytes = 4096\nmax_queued_bytes = 4096").unwrap();
    assert_eq!(config.mqtt.max_queued_bytes, 4096);
}

#[test]
fn cpus_and_shards() {
    let text = error_about("[tuning]\ncpus = [0, 1, 0]", "tuning.cpus");
    assert!(text.contains("CPU 0 is listed twice"), "{text}");
    error_about("[tuning]\ncpus = [-1]", "tuning.cpus");
    error_about("[tuning]\ncpus = [1024]", "tuning.cpus");
    let text = error_about("[tuning]\nshards = 3\ncpus = [0, 1]", "tuning.shards");
    assert!(
        text.contains("3 shards need 3 CPUs, but tuning.cpus lists 2 (0-1)"),
        "{text}"
    );
    error_about("[tuning]\nshards = 1025", "tuning.shards");
    let config = parse("[tuning]\nshards = 2\ncpus = [3, 1, 2]").unwrap();
    assert_eq!(config.tuning.shards.map(|n| n.get()), Some(2));
    assert_eq!(
        config.tuning.cpus,
        [3, 1, 2].map(|id| CpuId::new(id).unwrap()).to_vec()
    );
}

#[test]
fn exporter_threads_placement() {
    let config = parse("").unwrap();
    assert_eq!(config.events.exporter_nice, 10);
    assert!(config.events.exporter_cpus.is_empty());
    let text = error_about("[events]\nexporter_nice = 20", "events.exporter_nice");
    assert!(text.contains("between -20 and 19"), "{text}");
    let text = error_about("[events]\nexporter_cpus = [1, 1]", "events.exporter_cpus");
    assert!(text.contains("CPU 1 is listed twice"), "{text}");
    error_about("[events]\nexporter_cpus = [1024]", "events.exporter_cpus");
    let config = parse("[events]\nexporter_nice = 19\nexporter_cpus = [0]").unwrap();
    assert_eq!(config.events.exporter_nice, 19);
    assert_eq!(config.events.exporter_cpus, [CpuId::new(0).unwrap()]);
}

#[test]
fn zero_means_none_where_documented() {
    let config = parse(
        "[tuning]\nmax_connections_per_shard = 50000\nspin_before_park_us = 50\n\
         preempt_timer_us = 500\n",
    )
    .unwrap();
    assert_eq!(
        config.tuning.max_connections_per_shard.map(|n| n.get()),
        Some(50_000)
    );
    assert_eq!(
        config.tuning.spin_before_park,
        Some(Duration::from_micros(50))
    );
    assert_eq!(config.tuning.preempt_timer, Duration::from_micros(500));
    error_about("[tuning]\npreempt_timer_us = 0", "tuning.preempt_timer_us");
}

#[test]
fn log_settings() {
    let text = error_about("[log]\nformat = \"xml\"", "log.format");
    assert!(text.contains("\"human\", \"json\""), "{text}");
    let text = error_about("[log]\nlevel = \"\"", "log.level");
    assert!(text.contains("tracing filter"), "{text}");
    error_about("[log]\nlevel = \"starling=loud\"", "log.level");
    let config = parse("[log]\nformat = \"json\"\nlevel = \"starling=debug,warn\"").unwrap();
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, "starling=debug,warn");
}

#[test]
fn command_line_overrides_replace_the_files_values() {
    let file = "[[listeners]]\nname = \"a\"\nbind = \"0.0.0.0:1883\"\n[tuning]\nshards = 1\n";
    let overrides = Overrides {
        listen: vec![
            "127.0.0.1:2883".parse().unwrap(),
            "[::1]:2883".parse().unwrap(),
        ],
        shards: Some(2),
    };
    let config = Config::from_toml_str(file, &overrides).unwrap();
    let binds: Vec<String> = config
        .listeners
        .iter()
        .map(|l| l.bind.to_string())
        .collect();
    assert_eq!(binds, ["127.0.0.1:2883", "[::1]:2883"]);
    assert_eq!(config.listeners[0].name, "127.0.0.1:2883");
    assert_eq!(config.tuning.shards.map(|n| n.get()), Some(2));

    let auto = Overrides {
        shards: Some(0),
        ..Overrides::default()
    };
    assert_eq!(
        Config::from_toml_str(file, &auto).unwrap().tuning.shards,
        None
    );
    let huge = Overrides {
        shards: Some(u64::MAX),
        ..Overrides::default()
    };
    let err = Config::from_toml_str(file, &huge).unwrap_err();
    assert_eq!(err.key(), Some("tuning.shards"));
}

#[test]
fn a_missing_file_names_the_file() {
    let err = Config::load_file(
        Path::new("/nonexistent/starling.toml"),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string().contains("/nonexistent/starling.toml"),
        "{err}"
    );
}

#[test]
fn exporter_keys_of_another_sink_type_and_unknown_events_are_named() {
    let text = error_about(
        "[[exporters]]\ntype = \"jsonl\"\npath = \"x\"\nmaxlen = 5\n",
        "exporters[0].maxlen",
    );
    assert!(text.contains("redis"), "{text}");
    let text = error_about(
        "[[exporters]]\ntype = \"jsonl\"\npath = \"x\"\nrule.client_conected = [{}]\n",
        "exporters[0].rule.client_conected",
    );
    assert!(text.contains("client_connected"), "{text}");
}

#[test]
fn stats_interval_is_milliseconds_and_zero_turns_it_off() {
    let config = Config::default();
    assert_eq!(
        config.events.stats_interval,
        Some(Duration::from_millis(10_000))
    );
    let off = parse("[events]\nstats_interval_ms = 0").unwrap();
    assert_eq!(off.events.stats_interval, None);
    let fast = parse("[events]\nstats_interval_ms = 200").unwrap();
    assert_eq!(fast.events.stats_interval, Some(Duration::from_millis(200)));
    for bad in ["-1", "3600001"] {
        let text = error_about(
            &format!("[events]\nstats_interval_ms = {bad}"),
            "events.stats_interval_ms",
        );
        assert!(text.contains("between 0 and 3600000"), "{text}");
    }
    let text = error_about(
        "[[exporters]]\nname = \"a/b\"\ntype = \"jsonl\"\npath = \"x\"\n",
        "exporters[0].name",
    );
    assert!(text.contains("topic level"), "{text}");
}
