//! Writes the default config as commented TOML (`starling generate-config`) and the key
//! reference of `docs/configuration.md`.
//!
//! Values come from serializing the schema's own defaults and words from `reference`, so the
//! generated file parses to exactly [`Config::default`](super::Config::default) and documents
//! every key; tests hold both to that.

use std::fmt::Write as _;

use super::reference::{KeyDoc, SectionDoc, KEYS, SECTIONS};
use super::schema::RawConfig;

/// Width the comments are wrapped at.
const WIDTH: usize = 92;

/// The complete default config: every key at its default, with its type, unit, allowed values
/// and meaning as comments.
pub fn default_config_toml() -> String {
    let defaults = default_values();
    let mut out = String::new();
    for line in [
        "# Starling configuration, with every key at its default.",
        "#",
        "# Printed by `starling generate-config`. Every key may be left out: a missing key keeps",
        "# the default shown here, so a config file needs only the keys it changes. Units are in",
        "# the key names (_bytes, _secs, _us). `starling check-config FILE` checks a file;",
        "# docs/configuration.md is the full reference.",
    ] {
        out.push_str(line);
        out.push('\n');
    }
    for section in SECTIONS {
        out.push('\n');
        let rule = "=".repeat(WIDTH.saturating_sub(section.header.len() + 6));
        let _ = writeln!(out, "# == {} {rule}", section.header);
        push_comment(&mut out, section.doc);
        let _ = writeln!(out, "\n{}", section.header);
        for key in keys_of(section) {
            out.push('\n');
            push_comment(&mut out, key.doc);
            let value = lookup(&defaults, key.path);
            let mut kind = format!("Type: {}", key.kind);
            if let Some(plain) = value.and_then(|v| in_plain_units(key.path, v)) {
                let _ = write!(kind, " (default: {plain})");
            }
            push_comment(&mut out, &format!("{kind}."));
            push_comment(&mut out, &format!("Allowed: {}.", key.allowed));
            match value {
                Some(value) => {
                    let _ = writeln!(out, "{} = {}", key.key(), toml_text(value));
                }
                // A key whose default is "absent" (none today) is shown commented out.
                None => {
                    let _ = writeln!(out, "# {} =", key.key());
                }
            }
        }
    }
    out
}

/// The Markdown reference of every section and key, as `docs/configuration.md` embeds it
/// (`starling generate-config --markdown`).
pub fn reference_markdown() -> String {
    let defaults = default_values();
    let mut out = String::new();
    for section in SECTIONS {
        let _ = writeln!(out, "### `{}`\n\n{}\n", section.header, section.doc);
        out.push_str("| key | type | default |\n| --- | --- | --- |\n");
        for key in keys_of(section) {
            let default = lookup(&defaults, key.path)
                .map_or_else(String::new, |v| markdown_default(key.path, v));
            let _ = writeln!(
                out,
                "| [`{}`](#{}) | {} | {default} |",
                key.key(),
                anchor(key.path),
                key.kind
            );
        }
        out.push('\n');
        for key in keys_of(section) {
            let default = lookup(&defaults, key.path)
                .map_or_else(String::new, |v| markdown_default(key.path, v));
            let _ = writeln!(
                out,
                "#### `{}`\n\n*{}* · default {default} · allowed: {}\n\n{}\n",
                key.path, key.kind, key.allowed, key.doc
            );
        }
    }
    out
}

fn keys_of(section: &SectionDoc) -> impl Iterator<Item = &'static KeyDoc> + '_ {
    KEYS.iter().filter(move |key| key.section() == section.name)
}

/// GitHub's anchor for a `#### \`section.key\`` heading.
fn anchor(path: &str) -> String {
    path.chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every default as (`section.key`, value); a listener's keys are those of the built-in one.
pub(crate) fn default_values() -> Vec<(String, toml::Value)> {
    // Invariant: `RawConfig` holds only strings, integers, booleans, arrays and tables, which
    // always serialize; every template test runs this.
    #[allow(clippy::expect_used)]
    let root = toml::Table::try_from(RawConfig::default()).expect("the schema serializes");
    let mut values = Vec::new();
    for (section, value) in root {
        let table = match value {
            toml::Value::Table(table) => table,
            toml::Value::Array(items) => match items.into_iter().next() {
                Some(toml::Value::Table(table)) => table,
                _ => continue,
            },
            _ => continue,
        };
        for (key, value) in table {
            values.push((format!("{section}.{key}"), value));
        }
    }
    values
}

fn lookup<'a>(values: &'a [(String, toml::Value)], path: &str) -> Option<&'a toml::Value> {
    values.iter().find(|(p, _)| p == path).map(|(_, v)| v)
}

/// A value as TOML, with `_` grouping in large integers for the eye.
fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::Integer(n) if n.unsigned_abs() >= 10_000 => group_digits(*n),
        other => other.to_string(),
    }
}

fn group_digits(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push('_');
        }
        grouped.push(c);
    }
    if n < 0 {
        grouped.insert(0, '-');
    }
    grouped
}

fn markdown_default(path: &str, value: &toml::Value) -> String {
    match in_plain_units(path, value) {
        Some(plain) => format!("`{value}` ({plain})"),
        None => format!("`{value}`"),
    }
}

/// A default in the unit a person thinks in ("1 MiB", "2 ms", "7 days"), when that differs
/// from the number in the file.
fn in_plain_units(path: &str, value: &toml::Value) -> Option<String> {
    let n = value.as_integer()?;
    if path.ends_with("_bytes") {
        bytes_text(n)
    } else if path.ends_with("_us") && n >= 1000 && n % 1000 == 0 {
        Some(format!("{} ms", n / 1000))
    } else if path.ends_with("_secs") && n >= 86_400 && n % 86_400 == 0 {
        Some(format!("{} days", n / 86_400))
    } else {
        None
    }
}

fn bytes_text(n: i64) -> Option<String> {
    const UNITS: [(i64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    UNITS
        .iter()
        .find(|(size, _)| n >= *size && n % size == 0)
        .map(|(size, unit)| format!("{} {unit}", n / size))
}

/// Appends `text` as `# ` comment lines wrapped at [`WIDTH`].
fn push_comment(out: &mut String, text: &str) {
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line.truncate(1);
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_integers_are_grouped() {
        assert_eq!(group_digits(1_048_576), "1_048_576");
        assert_eq!(group_digits(604_800), "604_800");
        assert_eq!(group_digits(-12_345), "-12_345");
        assert_eq!(toml_text(&toml::Value::Integer(4096)), "4096");
    }

    #[test]
    fn plain_units() {
        let v = toml::Value::Integer;
        assert_eq!(
            in_plain_units("a_bytes", &v(1 << 20)).as_deref(),
            Some("1 MiB")
        );
        assert_eq!(
            in_plain_units("a_bytes", &v(128 * 1024)).as_deref(),
            Some("128 KiB")
        );
        assert_eq!(in_plain_units("a_bytes", &v(1000)), None);
        assert_eq!(in_plain_units("a_us", &v(2000)).as_deref(), Some("2 ms"));
        assert_eq!(
            in_plain_units("a_secs", &v(604_800)).as_deref(),
            Some("7 days")
        );
        assert_eq!(in_plain_units("a_secs", &v(10)), None);
    }

    #[test]
    fn comments_wrap_within_the_width() {
        let mut out = String::new();
        push_comment(&mut out, &"word ".repeat(60));
        assert!(out.lines().count() > 1);
        assert!(out.lines().all(|l| l.starts_with("# ") && l.len() <= WIDTH));
    }
}
