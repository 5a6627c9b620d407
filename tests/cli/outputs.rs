//! Where outputs go, from the issue "Hostile input and hostile clients" (outputs
//! that never clobber devices): `-o` naming a character device or a FIFO writes
//! into it as a shell redirect would; a symbolic link stays a link and the file it
//! leads to is replaced whole; `-o /dev/full` exits 1 with the reason.

#![cfg(unix)]

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use super::support::*;

fn sample_to(out: &Path) -> Run {
    let model = reference("cli_diag.model.json");
    run(&[
        "sample",
        "-m",
        arg(&model),
        "--n",
        "100",
        "--seed",
        "3",
        "-o",
        arg(out),
    ])
}

fn sample_stdout() -> Vec<u8> {
    let model = reference("cli_diag.model.json");
    run(&["sample", "-m", arg(&model), "--n", "100", "--seed", "3"])
        .ok()
        .stdout
}

#[test]
fn a_character_device_is_written_in_place_and_stays_a_device() {
    sample_to(Path::new("/dev/null")).ok();
    let meta = std::fs::metadata("/dev/null").expect("stat");
    assert!(meta.file_type().is_char_device());
}

#[test]
fn dev_full_exits_1_with_the_reason() {
    let out = sample_to(Path::new("/dev/full"));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("/dev/full"), "{}", out.stderr);
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    assert!(std::fs::metadata("/dev/full")
        .expect("stat")
        .file_type()
        .is_char_device());
}

#[test]
fn a_fifo_is_written_into_not_replaced() {
    let dir = tempdir();
    let fifo = dir.path().join("points.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    // The reader opens the FIFO as `cat fifo` would, before or after the writer.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).expect("read the fifo"))
    };
    sample_to(&fifo).ok();
    assert_eq!(reader.join().expect("reader"), sample_stdout());
    let meta = std::fs::symlink_metadata(&fifo).expect("lstat");
    assert!(meta.file_type().is_fifo(), "still a FIFO");
}

#[test]
fn a_symlink_stays_a_link_and_its_target_is_replaced() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("data")).expect("mkdir");
    let target = write(&dir.path().join("data"), "points.csv", "old\n");
    let link = dir.path().join("latest.csv");
    std::os::unix::fs::symlink("data/points.csv", &link).expect("symlink");
    sample_to(&link).ok();
    assert!(std::fs::symlink_metadata(&link)
        .expect("lstat")
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&target).expect("read"), sample_stdout());
    // fit's model file too.
    let data = write(dir.path(), "fit.csv", csv_text(&two_clusters(), false));
    let model_link = dir.path().join("model.json");
    std::os::unix::fs::symlink("data/model.json", &model_link).expect("symlink");
    run(&[
        "fit",
        "-i",
        arg(&data),
        "-k",
        "2",
        "-o",
        arg(&model_link),
        "--quiet",
    ])
    .ok();
    assert!(std::fs::symlink_metadata(&model_link)
        .expect("lstat")
        .file_type()
        .is_symlink());
    load(&dir.path().join("data/model.json"));
}
