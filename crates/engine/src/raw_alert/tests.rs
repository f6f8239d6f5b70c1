use super::*;
use crate::alert::Alert;

fn id() -> AlertId {
    AlertId::parse("id-1").unwrap()
}

/// The record decodes to what the full decoder makes of the body, with the given id.
fn same_as_full_path(body: &str) {
    let raw = RawAlert::parse(body.as_bytes());
    let full = Alert::from_json_slice_fast(body.as_bytes());
    assert_eq!(
        raw.is_some(),
        full.is_some(),
        "accepted by one path only: {body}"
    );
    let (Some(raw), Some(mut full)) = (raw, full) else {
        return;
    };
    assert_eq!(raw.uuid, full.uuid, "{body}");
    full.uuid.get_or_insert_with(id);
    let mut record = Vec::new();
    raw.encode(full.uuid.as_ref().unwrap(), &mut record);
    let decoded = Alert::from_json_slice(&record)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&record)));
    assert_eq!(decoded, full, "{}", String::from_utf8_lossy(&record));
    assert_eq!(
        (raw.priority, raw.source.as_ref()),
        (full.priority, full.source.as_str())
    );
}

/// Every pair of awkward values, as output fields and as tags, is accepted or refused by both
/// paths alike: the shape checks must never accept what serde_json would refuse, or a stored
/// record would not decode.
#[test]
fn awkward_values_in_pairs_are_judged_as_the_full_decoder_judges_them() {
    let values = [
        r#""""#,
        r#""a\"b""#,
        r#""\\""#,
        r#""{[""#,
        r#""\u0041""#,
        r#""\ud800""#,
        r#""\ud83d\ude00""#,
        r#""tab\tnew\n""#,
        "0",
        "-0",
        "-12.5",
        "1e5",
        "1E+2",
        "0.1e-3",
        "1e400",
        "18446744073709551616",
        "true",
        "false",
        "null",
        "{}",
        "[]",
        r#"{"a":1}"#,
        r#"["x"]"#,
        r#" "spaced" "#,
    ];
    let base = r#""rule":"r","priority":"Warning","time":"2026-06-12T09:23:10Z""#;
    for a in values {
        for b in values {
            same_as_full_path(&format!(
                r#"{{{base},"output_fields":{{"a":{a},"b":{b}}}}}"#
            ));
            same_as_full_path(&format!(r#"{{{base},"tags":[{a},{b}]}}"#));
            same_as_full_path(&format!(r#"{{{base},"output":{a},"hostname":{b}}}"#));
        }
    }
}

#[test]
fn a_body_not_utf8_throughout_is_left_to_the_full_path() {
    let mut body =
        br#"{"rule":"r","priority":"Warning","time":"2026-06-12T09:23:10Z","x":""#.to_vec();
    body.extend_from_slice(b"\xff\"}");
    assert!(RawAlert::parse(&body).is_none());
    assert!(Alert::from_json_slice_fast(&body).is_some());
}

#[test]
fn accepts_and_rejects_what_the_full_decoder_does() {
    let base = r#""rule":"Read sensitive file","priority":"Warning","time":"2026-06-12T09:23:10.123456789Z""#;
    for body in [
        format!("{{{base}}}"),
        format!(
            r#"{{{base},"output":"a \"quoted\" \u00e9 line","output_fields":{{"proc.name":"cat","evt.time":1781256190123456789,"user.uid":0,"fd.name":null,"x":true,"f":1.5}},"tags":["a","b"],"hostname":"node-1","source":"k8s_audit","uuid":"given-1"}}"#
        ),
        format!(r#"{{{base},"output":null,"output_fields":null,"tags":null,"hostname":null}}"#),
        format!(r#"{{{base},"unknown":{{"deep":[1,2]}}}}"#),
        r#"{"rule":"r","priority":"informational","time":"2026-06-12T09:23:10Z"}"#.to_string(),
        // Scalars that look like containers, escapes, and numbers at their limits:
        format!(
            r#"{{{base},"output_fields":{{"a":"{{[","b\"[":"\\","c":-0.5,"d":1.5e3,"e":1E-2,"f":false}},"tags":["[{{","\"",""]}}"#
        ),
        format!(r#"{{{base},"output_fields":{{"a":"\u00e9\ud83d\ude00"}},"tags":["\u0041"]}}"#),
        format!(
            r#"{{{base},"output_fields":{{"big":{}}}}}"#,
            "9".repeat(400)
        ),
        format!(
            r#"{{{base},"output_fields":{{"big":{}}}}}"#,
            "9".repeat(300)
        ),
        format!(
            r#"{{{base},"output_fields":{{"frac":0.{}}}}}"#,
            "1".repeat(400)
        ),
        format!(r#"{{{base},"output_fields":{{ }},"tags":[ ]}}"#),
        r#"{"rule":"r","priority":"  warning ","time":"2026-06-12T11:23:10+02:00"}"#.to_string(),
        // Refused by both:
        format!(r#"{{{base},"output_fields":{{"a":[1]}}}}"#),
        format!(r#"{{{base},"output_fields":{{"a":{{"b":1}}}}}}"#),
        format!(r#"{{{base},"output_fields":[1]}}"#),
        format!(r#"{{{base},"tags":["a",1]}}"#),
        format!(r#"{{{base},"tags":["a",null]}}"#),
        format!(r#"{{{base},"tags":[["a"]]}}"#),
        format!(r#"{{{base},"tags":{{"a":"b"}}}}"#),
        format!(r#"{{{base},"output_fields":{{"a":1e400}}}}"#),
        format!(r#"{{{base},"output_fields":{{"a":"\ud800"}}}}"#),
        format!(r#"{{{base},"tags":["\udc00"]}}"#),
        format!(r#"{{{base},"output_fields":"a"}}"#),
        format!(r#"{{{base},"output_fields":{{"a":"x","b":{{}}}}}}"#),
        format!(r#"{{{base},"tags":"a"}}"#),
        format!(r#"{{{base},"output":42}}"#),
        format!(r#"{{{base},"hostname":["h"]}}"#),
        format!(r#"{{{base},"uuid":"has space"}}"#),
        format!(r#"{{{base},"rule":"twice"}}"#),
        r#"{"rule":" ","priority":"Warning","time":"2026-06-12T09:23:10Z"}"#.to_string(),
        r#"{"rule":"r","priority":"Urgent","time":"2026-06-12T09:23:10Z"}"#.to_string(),
        r#"{"rule":"r","priority":"Warning","time":"yesterday"}"#.to_string(),
        r#"{"rule":"r","priority":"Warning"}"#.to_string(),
        r#"[{"rule":"r"}]"#.to_string(),
        // A struct's fields in order, as serde's derive would also read a struct:
        r#"["r","Warning","2026-06-12T09:23:10Z","id-1",null,null,null,null,null]"#.to_string(),
        r#"["r","Warning","2026-06-12T09:23:10Z",null,null,null,null,["t"],{"a":1}]"#.to_string(),
        "{".to_string(),
    ] {
        same_as_full_path(&body);
    }
}

/// Alerts to alter: Falco's shape, and one with the syntax a sender may use (whitespace, the
/// two-character escapes, unknown members nested in both kinds of container).
const SEEDS: [&str; 2] = [
    r#"{"hostname":"node-1","output":"09:23:10.123456789: Warning Sensitive file opened | file=/etc/shadow user=root","output_fields":{"container.id":"host","evt.time":1781256190123456789,"fd.name":"/etc/shadow","proc.tty":34816,"user.loginuid":-1,"user.uid":0},"priority":"Warning","rule":"Read sensitive file untrusted","source":"syscall","tags":["T1555","container","filesystem"],"time":"2026-06-12T09:23:10.123456789Z"}"#,
    " {\n \"rule\" : \"r q\", \"priority\":\"error\",\t\"time\":\"2026-06-12T09:23:10Z\", \"uuid\":\"id-7\",\r\n \"output\":\"a\\tb\\/c \u{e9}\", \"x\":[{\"y\":[true,false,null,-0.25]},{}], \"output_fields\":{ \"a\" : 12.5 , \"b\":null,\"c\\n\":false }, \"tags\":[ ], \"hostname\":\"h\" } ",
];

/// A small deterministic generator (xorshift64), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Alters `body` in one to three places: a byte deleted, inserted, replaced, or a span copied
/// elsewhere (which duplicates members and nests containers).
fn alter(body: &mut Vec<u8>, rng: &mut Rng) {
    const BYTES: &[u8] = b"\"\\{}[],:0123456789-+.eEtrufalsn \t\n\r\x01\x1f\x7f/bx";
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(body.len() + 1);
        match rng.below(4) {
            0 if at < body.len() => drop(body.remove(at)),
            1 => body.insert(at, BYTES[rng.below(BYTES.len())]),
            2 if at < body.len() => body[at] = BYTES[rng.below(BYTES.len())],
            _ => {
                let from = rng.below(body.len());
                let span = body[from..(from + rng.below(40)).min(body.len())].to_vec();
                body.splice(at..at, span);
            }
        }
    }
}

/// The one-pass reader must never accept what serde_json reads differently (or refuses): a
/// record stored from its reading would not decode to the alert that was sent. And whichever
/// reader decides, the alert is accepted and stored as the full decoder reads it.
#[test]
fn whatever_the_one_pass_reader_accepts_serde_json_reads_alike() {
    for seed in SEEDS {
        assert!(
            scan::members(seed).is_some(),
            "not read in one pass: {seed}"
        );
        assert_eq!(scan::members(seed), wire::members(seed));
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut read, mut refused) = (0, 0);
    for round in 0..40_000 {
        let mut body = SEEDS[round % SEEDS.len()].as_bytes().to_vec();
        alter(&mut body, &mut rng);
        let Ok(text) = std::str::from_utf8(&body) else {
            continue;
        };
        match scan::members(text) {
            Some(members) => {
                read += 1;
                assert_eq!(Some(members), wire::members(text), "round {round}: {text}");
            }
            None => refused += 1,
        }
        same_as_full_path(text);
    }
    // Both outcomes are common, so both sides of the reader were exercised.
    assert!(
        read > 5_000 && refused > 5_000,
        "read {read}, refused {refused}"
    );
}
