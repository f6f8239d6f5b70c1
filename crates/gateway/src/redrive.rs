//! `peregrine-gateway dead-letters list|replay`: look at what outputs could not deliver, and put
//! it back in the spool for one output.
//!
//! `list` reads the dead-letter files and works while the gateway runs. `replay` appends to the
//! spool, which one process owns at a time: it runs while the gateway is stopped, and the alerts
//! are delivered when it starts. Replayed alerts keep their uuids (receivers that deduplicate drop
//! copies), go to the named output only, and are moved from the dead-letter files to
//! `dead-letter/replayed/<output>.jsonl` with the time of the replay, so a second replay does not
//! send them again.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use peregrine_engine::EventTime;
use serde_json::Value;

use crate::config::Config;
use crate::deadletter::{self, DeadLetterFile};
use crate::spool::{flags, NewRecord, Spool};

/// Which dead letters to take.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub output: Option<String>,
    /// The reason word (`http_400`, `retries_exhausted`, …) or a part of the destination's
    /// own reason text.
    pub reason: Option<String>,
    /// Only those dead-lettered at or after this RFC 3339 time.
    pub since: Option<String>,
}

/// One dead letter as stored.
pub struct Entry {
    pub output: String,
    pub line: String,
    pub value: Value,
}

impl Entry {
    fn text(&self, key: &str) -> &str {
        self.value[key].as_str().unwrap_or("")
    }

    /// A line for people: time, output, reason word, status, attempts, uuid, rule.
    pub fn summary(&self) -> String {
        let alert = &self.value["alert"];
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{:?}",
            self.text("time"),
            self.output,
            self.text("code"),
            self.value["status"],
            self.value["attempts"],
            alert["uuid"].as_str().unwrap_or(""),
            alert["rule"].as_str().unwrap_or("")
        )
    }

    fn matches(&self, filter: &Filter) -> bool {
        let reason = filter
            .reason
            .as_deref()
            .is_none_or(|r| self.text("code") == r || self.text("reason").contains(r));
        let since = filter
            .since
            .as_deref()
            .is_none_or(|t| self.text("time") >= t);
        reason && since
    }
}

/// The outputs a filter names (all configured ones by default), checked against the config.
fn outputs(config: &Config, filter: &Filter) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = config.outputs.iter().map(|o| o.name.clone()).collect();
    match &filter.output {
        None => Ok(names),
        Some(n) if names.contains(n) => Ok(vec![n.clone()]),
        Some(n) => anyhow::bail!(
            "no output named '{n}' in the configuration (outputs: {})",
            names.join(", ")
        ),
    }
}

fn current_file(config: &Config, output: &str) -> PathBuf {
    config
        .spool
        .dir
        .join("dead-letter")
        .join(format!("{output}.jsonl"))
}

/// The dead letters the filter selects, oldest first per output.
pub fn list(config: &Config, filter: &Filter) -> anyhow::Result<Vec<Entry>> {
    let mut found = Vec::new();
    for output in outputs(config, filter)? {
        for file in deadletter::all_files(&current_file(config, &output))? {
            for entry in read_entries(&file, &output)? {
                if entry.matches(filter) {
                    found.push(entry);
                }
            }
        }
    }
    Ok(found)
}

/// Every dead letter of one output (its current file is `current`), oldest first.
pub fn read_all(current: &Path, output: &str) -> anyhow::Result<Vec<Entry>> {
    let mut found = Vec::new();
    for file in deadletter::all_files(current)? {
        found.extend(read_entries(&file, output)?);
    }
    Ok(found)
}

fn read_entries(file: &Path, output: &str) -> anyhow::Result<Vec<Entry>> {
    let text = fs::read_to_string(file)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let value: Value = serde_json::from_str(line).map_err(|e| {
                anyhow::anyhow!("{}:{}: not a dead letter: {e}", file.display(), i + 1)
            })?;
            Ok(Entry {
                output: output.to_string(),
                line: line.to_string(),
                value,
            })
        })
        .collect()
}

/// Puts the selected dead letters of `filter.output` back in the spool for that output only.
/// Returns how many. Needs the gateway stopped (the spool has one owner at a time).
pub async fn replay(config: &Config, filter: &Filter) -> anyhow::Result<usize> {
    let Some(output) = filter.output.clone() else {
        anyhow::bail!("replay needs --output: dead letters go back to the output that failed them");
    };
    outputs(config, filter)?;
    let spool = Spool::open(&config.spool).map_err(|e| {
        anyhow::anyhow!(
            "cannot open the spool at {}: {e} (stop the gateway first: replay writes to its spool)",
            config.spool.dir.display()
        )
    })?;
    let current = current_file(config, &output);
    let mut replayed = Vec::new();
    for file in deadletter::all_files(&current)? {
        let (take, keep): (Vec<Entry>, Vec<Entry>) = read_entries(&file, &output)?
            .into_iter()
            .partition(|e| e.matches(filter));
        if take.is_empty() {
            continue;
        }
        put_back(&spool, &output, &take).await?;
        // Stored durably: now they leave the dead letters, and the replay is recorded.
        record_replayed(
            &config.spool.dir,
            &output,
            &take,
            "the dead-letters replay command",
        )?;
        rewrite(&file, &keep)?;
        replayed.extend(take);
    }
    Ok(replayed.len())
}

/// Appends `entries` to the spool for `output` only, durably.
async fn put_back(spool: &Spool, output: &str, entries: &[Entry]) -> anyhow::Result<()> {
    let records = entries
        .iter()
        .map(|e| {
            let mut payload = format!("{output}\n").into_bytes();
            payload.extend(serde_json::to_vec(&e.value["alert"]).expect("JSON serialises"));
            NewRecord {
                payload,
                flags: flags::REPLAY,
            }
        })
        .collect();
    spool.append(records).await?;
    Ok(())
}

/// The same operation as [`replay`] while the gateway runs (the console's redrive): the
/// running spool takes the alerts, and the output's own dead-letter file lets go of them under
/// its lock. `by` (the signed-in user) is recorded with each replayed line. Returns the uuids
/// of the alerts put back.
pub async fn replay_live(
    spool: &Spool,
    file: &Arc<DeadLetterFile>,
    output: &str,
    filter: &Filter,
    by: &str,
) -> anyhow::Result<Vec<String>> {
    let mut take = Vec::new();
    for f in deadletter::all_files(file.path())? {
        take.extend(
            read_entries(&f, output)?
                .into_iter()
                .filter(|e| e.matches(filter)),
        );
    }
    if take.is_empty() {
        return Ok(Vec::new());
    }
    put_back(spool, output, &take).await?;
    // Stored durably: now they leave the dead letters (a crash before this line replays them
    // twice at worst, never loses one), and the replay is recorded.
    let lines = take.iter().map(|e| e.line.clone()).collect();
    let spool_dir = spool.dir().to_path_buf();
    let (file, output, by) = (file.clone(), output.to_string(), by.to_string());
    let uuids = take
        .iter()
        .filter_map(|e| e.value["alert"]["uuid"].as_str().map(str::to_string))
        .collect();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        record_replayed(&spool_dir, &output, &take, &by)?;
        file.remove_lines(&lines)?;
        Ok(())
    })
    .await??;
    Ok(uuids)
}

/// Appends the replayed lines, with the replay time and who asked, to
/// `dead-letter/replayed/<output>.jsonl`.
fn record_replayed(
    spool_dir: &Path,
    output: &str,
    entries: &[Entry],
    by: &str,
) -> anyhow::Result<()> {
    let dir = spool_dir.join("dead-letter").join("replayed");
    fs::create_dir_all(&dir)?;
    let now = EventTime::now().to_string();
    let mut text = String::new();
    for e in entries {
        let mut v = e.value.clone();
        v["replayed_at"] = Value::String(now.clone());
        v["replayed_by"] = Value::String(by.to_string());
        text.push_str(&v.to_string());
        text.push('\n');
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{output}.jsonl")))?;
    f.write_all(text.as_bytes())?;
    f.sync_data()?;
    Ok(())
}

/// Replaces `file` with the lines kept, atomically.
fn rewrite(file: &Path, keep: &[Entry]) -> anyhow::Result<()> {
    let tmp = file.with_extension("jsonl.tmp");
    let mut text = String::new();
    for e in keep {
        text.push_str(&e.line);
        text.push('\n');
    }
    let mut f = fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, file)?;
    if let Some(dir) = file.parent() {
        crate::spool::sync_dir(dir)?;
    }
    Ok(())
}
