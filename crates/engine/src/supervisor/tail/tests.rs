//! The log reader against real files: long lines, linear work, lines split
//! across reads, bounded buffers.

use super::*;
use orch_agent::adapters::{AdapterKind, OutcomeKind, ProcessExit, adapter_for};
use std::io::Write;

fn append(path: &std::path::Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Every line of the file, read in slices of `budget` bytes, then flushed.
fn read_all(tail: &mut LogTail, budget: usize) -> (Vec<String>, Vec<Slice>) {
    let mut lines = Vec::new();
    let mut slices = Vec::new();
    loop {
        let s = tail.read_slice(budget, |l| lines.push(l.to_owned()));
        slices.push(s);
        if s.at_end {
            break;
        }
    }
    tail.flush(|l| lines.push(l.to_owned()));
    (lines, slices)
}

const INIT: &str =
    r#"{"type":"system","subtype":"init","session_id":"s-1","model":"claude-sonnet-4-5"}"#;
const RESULT: &str = r#"{"type":"result","subtype":"success","is_error":false,"result":"all done","session_id":"s-1","total_cost_usd":0.5,"usage":{"input_tokens":3,"output_tokens":4}}"#;

/// One assistant line whose text is `n` bytes of `x`.
fn huge_assistant(n: usize) -> Vec<u8> {
    let mut l = br#"{"type":"assistant","session_id":"s-1","message":{"id":"m-big","content":[{"type":"text","text":""#.to_vec();
    l.resize(l.len() + n, b'x');
    l.extend_from_slice(br#""}],"usage":{"input_tokens":1,"output_tokens":1}}}"#);
    l
}

#[test]
fn a_line_longer_than_the_cap_is_truncated_with_a_marker_and_the_lines_around_it_parse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("output.log");
    let big = huge_assistant(3 * MAX_PARSE_LINE);
    let mut file = format!("{INIT}\n").into_bytes();
    file.extend_from_slice(&big);
    file.push(b'\n');
    file.extend_from_slice(format!("{RESULT}\n").as_bytes());
    std::fs::write(&path, &file).unwrap();

    let mut tail = LogTail::new(path);
    let (lines, _) = read_all(&mut tail, 256 * 1024);
    assert_eq!(lines.len(), 3, "three lines, the long one whole as one");
    assert_eq!(lines[0], INIT);
    assert_eq!(lines[2], RESULT);
    let cut = &lines[1];
    assert!(
        cut.as_bytes().starts_with(&big[..MAX_PARSE_LINE]),
        "the long line keeps its first MAX_PARSE_LINE bytes"
    );
    let marker = &cut[MAX_PARSE_LINE..];
    let shown: String = marker.chars().take(200).collect();
    assert!(marker.starts_with(TRUNCATED_MARKER), "marker: {shown}…");
    assert!(
        marker.contains(&format!("{} bytes", big.len())),
        "the marker says how long the line was: {shown}…"
    );
    let stats = tail.stats();
    assert_eq!(
        (stats.truncated, stats.longest_truncated),
        (1, big.len() as u64)
    );

    // The lines around it still decide the run: a Claude run that succeeded.
    let mut a = adapter_for(AdapterKind::ClaudeCode);
    for l in &lines {
        a.feed_line(l);
    }
    let out = a.finish(ProcessExit::Code(0));
    assert_eq!(out.kind, OutcomeKind::Succeeded);
    assert_eq!(out.session_id.as_deref(), Some("s-1"));
    assert_eq!(out.final_text.as_deref(), Some("all done"));
}

#[test]
fn a_line_at_the_cap_is_whole_and_one_byte_more_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("output.log");
    let mut file = vec![b'a'; MAX_PARSE_LINE];
    file.push(b'\n');
    file.extend(std::iter::repeat_n(b'b', MAX_PARSE_LINE + 1));
    file.push(b'\n');
    std::fs::write(&path, &file).unwrap();
    let (lines, _) = read_all(&mut LogTail::new(path), usize::MAX);
    assert_eq!(lines[0].len(), MAX_PARSE_LINE);
    assert!(!lines[0].contains(TRUNCATED_MARKER));
    assert!(lines[1][MAX_PARSE_LINE..].starts_with(TRUNCATED_MARKER));
}

#[test]
fn a_cut_never_splits_a_character() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("output.log");
    // "é" is two bytes and the cap is even: start one byte off.
    let mut file = b"x".to_vec();
    for _ in 0..MAX_PARSE_LINE {
        file.extend_from_slice("é".as_bytes());
    }
    file.push(b'\n');
    std::fs::write(&path, &file).unwrap();
    let (lines, _) = read_all(&mut LogTail::new(path), usize::MAX);
    let kept = lines[0].split(TRUNCATED_MARKER).next().unwrap();
    assert!(!kept.contains('\u{fffd}'), "no half character");
    assert_eq!(kept.len(), MAX_PARSE_LINE - 1);
}

#[test]
fn reading_is_linear_in_the_bytes_and_bounded_per_slice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("output.log");
    // A long line, then 200,000 stream-json lines, then a result.
    let mut file = huge_assistant(4 * MAX_PARSE_LINE);
    file.push(b'\n');
    let mut longest = 0;
    for i in 0..200_000 {
        let l = format!(
            "{{\"type\":\"assistant\",\"session_id\":\"s-1\",\"message\":{{\"id\":\"m-{}\",\"content\":[{{\"type\":\"text\",\"text\":\"line {i}\"}}],\"usage\":{{\"input_tokens\":1,\"output_tokens\":1}}}}}}\n",
            i / 3
        );
        longest = longest.max(l.len());
        file.extend_from_slice(l.as_bytes());
    }
    file.extend_from_slice(format!("{RESULT}\n").as_bytes());
    std::fs::write(&path, &file).unwrap();
    let total = file.len();

    let budget = 1024 * 1024;
    let mut tail = LogTail::new(path);
    let (lines, slices) = read_all(&mut tail, budget);
    assert_eq!(lines.len(), 200_002);
    assert_eq!(lines.last().map(String::as_str), Some(RESULT));

    // The work: every byte scanned once; copied only where a line spans two
    // reads (at most one line per read) and for the cut line and its marker.
    let stats = tail.stats();
    assert_eq!(stats.bytes_read, total as u64);
    let reads = total.div_ceil(READ_CHUNK) as u64;
    let bound = reads * longest as u64 + MAX_PARSE_LINE as u64 * 2 + 200;
    assert!(
        stats.bytes_copied <= bound,
        "copied {} bytes of {total}: more than one line per read (bound {bound})",
        stats.bytes_copied
    );
    // Each slice reads at most its budget, and together they read the file once.
    assert!(slices.iter().all(|s| s.bytes <= budget));
    assert_eq!(slices.iter().map(|s| s.bytes).sum::<usize>(), total);
    assert_eq!(
        slices.len(),
        total / budget + 1,
        "full slices, then the one that reads the rest and finds the end"
    );

    assert_eq!(stats.lines, 200_002);
}

#[test]
fn lines_split_across_reads_come_out_once_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("output.log");
    let mut tail = LogTail::new(path.clone());
    let mut lines = Vec::new();
    // Not written yet: nothing, and caught up.
    assert!(tail.read_slice(1024, |l| lines.push(l.to_owned())).at_end);
    append(&path, b"first\npar");
    let s = tail.read_slice(1024, |l| lines.push(l.to_owned()));
    assert_eq!((s.bytes, s.lines, s.at_end), (9, 1, true));
    append(&path, b"tial\r\nno newline");
    tail.read_slice(1024, |l| lines.push(l.to_owned()));
    assert_eq!(lines, ["first", "partial\r"]);
    tail.flush(|l| lines.push(l.to_owned()));
    assert_eq!(lines, ["first", "partial\r", "no newline"]);
    // Flushed once: nothing more.
    tail.flush(|l| lines.push(l.to_owned()));
    assert_eq!(lines.len(), 3);
}

#[test]
fn a_long_line_written_in_pieces_is_held_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("output.log");
    let mut tail = LogTail::new(path.clone());
    let mut lines = Vec::new();
    let piece = vec![b'z'; 512 * 1024];
    for _ in 0..16 {
        append(&path, &piece);
        while !tail
            .read_slice(64 * 1024, |l| lines.push(l.to_owned()))
            .at_end
        {}
        assert!(
            tail.carry.len() <= MAX_PARSE_LINE,
            "the unfinished line is held to the cap"
        );
        assert!(tail.carry.capacity() <= 2 * MAX_PARSE_LINE);
    }
    assert!(lines.is_empty(), "no newline yet");
    append(&path, b"\nnext\n");
    tail.read_slice(usize::MAX, |l| lines.push(l.to_owned()));
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains(&format!("{} bytes", 16 * piece.len())));
    assert_eq!(lines[1], "next");
    assert!(
        tail.carry.capacity() <= READ_CHUNK,
        "the long line's buffer is given back"
    );
    assert!(
        tail.buf.is_empty(),
        "caught up: the read buffer is given back"
    );
}

#[test]
fn skip_to_end_drops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("output.log");
    std::fs::write(&path, b"one\ntwo\nthree\nfour").unwrap();
    let mut tail = LogTail::new(path.clone());
    let mut lines = Vec::new();
    tail.read_slice(6, |l| lines.push(l.to_owned()));
    assert_eq!(tail.skip_to_end(), 18 - 6);
    append(&path, b"five\n");
    tail.read_slice(usize::MAX, |l| lines.push(l.to_owned()));
    tail.flush(|l| lines.push(l.to_owned()));
    assert_eq!(lines, ["one", "five"]);
}

#[test]
fn find_newline_agrees_with_a_plain_scan() {
    let mut hay = vec![b'a'; 100];
    assert_eq!(find_newline(&hay), None);
    for at in [0, 1, 7, 8, 9, 63, 64, 95, 99] {
        hay.fill(b'a');
        hay[at] = b'\n';
        assert_eq!(find_newline(&hay), Some(at), "newline at {at}");
        // Bytes that look like a newline to a sloppy test: 0x0b, 0x8a, 0x0a+0x100.
        hay[(at + 1) % 100] = 0x8a;
        assert_eq!(find_newline(&hay), Some(at));
    }
    let tricky: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').collect();
    assert_eq!(find_newline(&tricky), None);
    assert_eq!(find_newline(b""), None);
}

#[test]
fn utf8_prefix_stops_before_a_half_character() {
    assert_eq!(utf8_prefix(b"abc"), 3);
    assert_eq!(utf8_prefix("aé".as_bytes()), 3);
    assert_eq!(utf8_prefix(&"aé".as_bytes()[..2]), 1);
    assert_eq!(utf8_prefix(&"a€".as_bytes()[..3]), 1);
    assert_eq!(utf8_prefix(&"a😀".as_bytes()[..4]), 1);
    assert_eq!(utf8_prefix("a😀".as_bytes()), 5);
    assert_eq!(utf8_prefix(&[0x80, 0x80]), 2);
}
