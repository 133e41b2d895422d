//! `weft check` as a user runs it: the binary over Istio's own YAML.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/istio")
}

/// The files SOURCES.md lists with the role `valid`.
fn valid_files() -> Vec<PathBuf> {
    let sources = std::fs::read_to_string(corpus().join("SOURCES.md")).expect("SOURCES.md");
    let files: Vec<PathBuf> = sources
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `file` | role | kinds | what |
            (cells.len() > 3 && cells[2] == "valid")
                .then(|| cells[1].trim_matches('`'))
                .map(|file| corpus().join(file))
        })
        .collect();
    assert!(
        files.len() > 100,
        "SOURCES.md lists only {} valid files",
        files.len()
    );
    files
}

fn weft_check(args: &[&Path]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("check")
        .args(args)
        .output()
        .expect("run weft check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[test]
fn every_valid_istio_file_passes() {
    let files = valid_files();
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, output) = weft_check(&paths);
    assert_eq!(code, 0, "weft check failed on the valid corpus:\n{output}");
    assert!(!output.contains(": error"), "{output}");
    // Kinds weft does not handle are reported, not failed.
    assert!(
        output.contains("Gateway"),
        "no note about skipped Gateways:\n{output}"
    );
}

#[test]
fn syntax_error_names_path_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: a\nspec:\n  hosts: [a\n  http: []\n",
    )
    .expect("write");
    let (code, output) = weft_check(&[&file]);
    assert_eq!(code, 1, "{output}");
    let prefix = format!("{}:", file.display());
    let line = output
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no finding naming the file:\n{output}"));
    let mut parts = line[prefix.len()..].splitn(3, ':');
    let line_no: usize = parts
        .next()
        .and_then(|n| n.parse().ok())
        .expect("line number");
    let column: usize = parts.next().and_then(|n| n.parse().ok()).expect("column");
    assert!((6..=7).contains(&line_no) && column >= 1, "{line}");
    assert!(line.contains("error"), "{line}");
}

#[test]
fn folder_with_bad_document_fails_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("ok.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: ok\nspec:\n  host: ok\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: w\nspec:\n  hosts: [w]\n  http:\n  - route:\n    - destination:\n        host: w\n      weight: heavy\n",
    )
    .expect("write");
    let (code, output) = weft_check(&[dir.path()]);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("bad.yaml:11:"), "{output}");

    let output = Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("check")
        .output()
        .expect("run weft check");
    assert_eq!(output.status.code(), Some(2));
}
