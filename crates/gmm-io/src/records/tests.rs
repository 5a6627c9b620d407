//! Framing: payloads, offsets and locations, whatever the underlying buffer size.

use std::io::{BufReader, Read};

use proptest::prelude::*;

use super::*;

/// A record with an owned payload, so that several can be collected.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    start: u64,
    end: u64,
    location: Location,
    payload: Result<Vec<u8>, Reject>,
}

fn collect<R: BufRead>(mut reader: RecordReader<R>) -> Vec<Owned> {
    let mut records = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        records.push(Owned {
            start: record.start,
            end: record.end,
            location: record.location,
            payload: record.payload.map(<[u8]>::to_vec),
        });
    }
    assert_eq!(
        reader.next_record().unwrap(),
        None,
        "end of input is sticky"
    );
    records
}

/// Reads `input` through a `BufReader` of the given capacity (tiny ones force
/// records to span refills).
fn frame(input: &[u8], framing: Framing, capacity: usize) -> Vec<Owned> {
    collect(RecordReader::new(
        BufReader::with_capacity(capacity, input),
        framing,
    ))
}

fn line(start: u64, end: u64, number: u64, payload: &str) -> Owned {
    Owned {
        start,
        end,
        location: Location::Line(number),
        payload: Ok(payload.as_bytes().to_vec()),
    }
}

fn fixed(size: usize) -> Framing {
    Framing::Fixed(NonZeroUsize::new(size).unwrap())
}

#[test]
fn lines_carry_offsets_and_numbers() {
    let input = b"a\nbb\r\n\nccc";
    let expected = vec![
        line(0, 2, 1, "a"),
        line(2, 6, 2, "bb"),
        line(6, 7, 3, ""),
        line(7, 10, 4, "ccc"),
    ];
    for capacity in [1, 2, 3, 5, 8192] {
        assert_eq!(
            frame(input, Framing::Lines, capacity),
            expected,
            "{capacity}"
        );
    }
}

#[test]
fn a_final_newline_does_not_make_an_empty_record() {
    assert_eq!(frame(b"a\n", Framing::Lines, 64), vec![line(0, 2, 1, "a")]);
    assert!(frame(b"", Framing::Lines, 64).is_empty());
    assert_eq!(frame(b"\n", Framing::Lines, 64), vec![line(0, 1, 1, "")]);
}

#[test]
fn position_is_the_end_of_the_last_record() {
    let mut reader = RecordReader::new(&b"12\n345\n6"[..], Framing::Lines);
    assert_eq!(reader.position(), 0);
    let end = reader.next_record().unwrap().unwrap().end;
    assert_eq!((end, reader.position()), (3, 3));
    reader.next_record().unwrap();
    assert_eq!(reader.position(), 7);
    reader.next_record().unwrap();
    assert_eq!(reader.position(), 8);
}

#[test]
fn an_over_long_line_is_rejected_and_skipped() {
    let input = b"abc\nabcdefgh\r\nxy";
    for capacity in [1, 3, 4, 64] {
        let reader = RecordReader::new(
            BufReader::with_capacity(capacity, &input[..]),
            Framing::Lines,
        )
        .with_max_record_bytes(4);
        let records = collect(reader);
        assert_eq!(records.len(), 3, "{capacity}");
        assert_eq!(records[0], line(0, 4, 1, "abc"));
        assert_eq!((records[1].start, records[1].end), (4, 14));
        assert_eq!(records[1].location, Location::Line(2));
        let reject = records[1].payload.clone().unwrap_err();
        assert_eq!(reject.reason, RejectReason::TooLarge);
        assert_eq!(
            reject.detail,
            "line of 10 bytes exceeds the limit of 4 bytes"
        );
        assert_eq!(records[2], line(14, 16, 3, "xy"));
    }
}

#[test]
fn resuming_numbers_from_the_given_offset() {
    let unknown_line = RecordReader::new(&b"7\n8\n"[..], Framing::Lines).starting_at(100, None);
    let records = collect(unknown_line);
    assert_eq!(records[0].location, Location::LineAtByte(100));
    assert_eq!((records[1].start, records[1].end), (102, 104));
    assert_eq!(records[1].location, Location::LineAtByte(102));

    let known_line = RecordReader::new(&b"7\n"[..], Framing::Lines).starting_at(100, Some(41));
    assert_eq!(collect(known_line)[0].location, Location::Line(41));

    let binary = RecordReader::new(&[0u8; 8][..], fixed(4)).starting_at(40, Some(3));
    let records = collect(binary);
    assert_eq!(records[0].location, Location::Record(11));
    assert_eq!((records[1].start, records[1].end), (44, 48));
}

#[test]
fn fixed_records_and_a_truncated_tail() {
    let input: Vec<u8> = (0..10).collect();
    for capacity in [1, 3, 4, 7, 64] {
        let records = frame(&input, fixed(4), capacity);
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].payload, Ok(vec![0, 1, 2, 3]));
        assert_eq!(records[1].payload, Ok(vec![4, 5, 6, 7]));
        assert_eq!(records[1].location, Location::Record(2));
        assert_eq!((records[2].start, records[2].end), (8, 10));
        let reject = records[2].payload.clone().unwrap_err();
        assert_eq!(reject.reason, RejectReason::Parse);
        assert_eq!(reject.detail, "truncated record: 2 bytes, expected 4");
    }
    let mut reader = RecordReader::new(&input[..], fixed(4));
    let mut held = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        held.push(record.held.to_vec());
    }
    assert_eq!(
        held,
        [vec![], vec![], vec![8, 9]],
        "the dead letter's bytes"
    );
    assert!(frame(&input[..8], fixed(4), 3)
        .iter()
        .all(|r| r.payload.is_ok()));
}

#[test]
fn dropping_the_reader_leaves_a_borrowed_input_after_the_last_record() {
    let mut input = BufReader::new(&b"first\nsecond\n"[..]);
    {
        let mut reader = RecordReader::new(&mut input, Framing::Lines);
        let record = reader.next_record().unwrap().unwrap();
        assert_eq!(record.payload, Ok(&b"first"[..]));
    }
    let mut rest = String::new();
    input.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "second\n");
}

/// Fails with `Interrupted` before every successful read, then with a real error at
/// the end of its data.
struct Flaky {
    data: &'static [u8],
    interrupt_next: bool,
}

impl Read for Flaky {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt_next = !self.interrupt_next;
        if !self.interrupt_next {
            return Err(io::ErrorKind::Interrupted.into());
        }
        if self.data.is_empty() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.data.len()).min(2);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn interrupted_reads_are_retried_and_errors_reported() {
    let flaky = Flaky {
        data: b"ab\ncd\n",
        interrupt_next: false,
    };
    let mut reader = RecordReader::new(BufReader::with_capacity(4, flaky), Framing::Lines);
    assert_eq!(
        reader.next_record().unwrap().unwrap().payload,
        Ok(&b"ab"[..])
    );
    assert_eq!(
        reader.next_record().unwrap().unwrap().payload,
        Ok(&b"cd"[..])
    );
    let error = reader.next_record().unwrap_err();
    assert_eq!(error.to_string(), "disk on fire");
}

#[test]
fn locations_read_well() {
    assert_eq!(Location::Line(17).to_string(), "line 17");
    assert_eq!(
        Location::LineAtByte(4096).to_string(),
        "the line at byte 4096"
    );
    assert_eq!(Location::Record(3).to_string(), "record 3");
    assert_eq!(Location::Line(17).line(), Some(17));
    assert_eq!(Location::Record(3).line(), None);
}

fn text_lines() -> impl Strategy<Value = (Vec<(Vec<u8>, &'static str)>, usize)> {
    let content = prop::collection::vec(
        any::<u8>().prop_filter("no newline", |&b| b != b'\n' && b != b'\r'),
        0..20,
    );
    let ending = prop::sample::select(vec!["\n", "\r\n", ""]);
    (prop::collection::vec((content, ending), 0..12), 1usize..24)
}

proptest! {
    #[test]
    fn lines_reassemble_the_input((lines, capacity) in text_lines()) {
        // Only the last line may lack a newline, or two lines would merge.
        let count = lines.len();
        let lines: Vec<_> = lines
            .into_iter()
            .enumerate()
            .map(|(i, (content, ending))| (content, if ending.is_empty() && i + 1 < count { "\n" } else { ending }))
            .collect();
        let input: Vec<u8> = lines.iter().flat_map(|(c, e)| c.iter().chain(e.as_bytes()).copied()).collect();
        let records = frame(&input, Framing::Lines, capacity);
        let expected: Vec<_> = lines.iter().filter(|(c, e)| !(c.is_empty() && e.is_empty())).collect();
        prop_assert_eq!(records.len(), expected.len());
        let mut offset = 0;
        for (i, (record, (content, _))) in records.iter().zip(&expected).enumerate() {
            prop_assert_eq!(record.start, offset);
            prop_assert_eq!(record.location, Location::Line(i as u64 + 1));
            prop_assert_eq!(record.payload.as_deref(), Ok(&content[..]));
            offset = record.end;
        }
        prop_assert_eq!(offset, input.len() as u64);
    }

    #[test]
    fn resuming_at_any_record_boundary_gives_the_same_tail(
        (lines, capacity) in text_lines(),
        pick in any::<prop::sample::Index>(),
    ) {
        let input: Vec<u8> = lines.iter().flat_map(|(c, _)| c.iter().chain(b"\n").copied()).collect();
        let all = frame(&input, Framing::Lines, capacity);
        let resume_at = if all.is_empty() { 0 } else { pick.index(all.len()) };
        let offset = all.get(resume_at).map_or(input.len() as u64, |r| r.start);
        let tail = collect(
            RecordReader::new(BufReader::with_capacity(capacity, &input[offset as usize..]), Framing::Lines)
                .starting_at(offset, Some(resume_at as u64 + 1)),
        );
        prop_assert_eq!(&tail[..], &all[resume_at..]);
    }

    #[test]
    fn fixed_records_reassemble_the_input(
        input in prop::collection::vec(any::<u8>(), 0..100),
        size in 1usize..17,
        capacity in 1usize..40,
    ) {
        let records = frame(&input, fixed(size), capacity);
        prop_assert_eq!(records.len(), input.len().div_ceil(size));
        for (i, (record, chunk)) in records.iter().zip(input.chunks(size)).enumerate() {
            prop_assert_eq!(record.start, (i * size) as u64);
            prop_assert_eq!(record.end, (i * size + chunk.len()) as u64);
            prop_assert_eq!(record.location, Location::Record(i as u64 + 1));
            prop_assert_eq!(record.payload.is_ok(), chunk.len() == size);
            if let Ok(payload) = &record.payload {
                prop_assert_eq!(&payload[..], chunk);
            }
        }
    }
}
