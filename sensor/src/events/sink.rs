//! Where event lines go: standard output, a file rotated by size (`path`, `path.1`, ...), or
//! nowhere.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::config::EventSink;

/// Where event lines go.
pub enum Writer {
    Stdout,
    File {
        path: PathBuf,
        file: File,
        written: u64,
        max_bytes: u64,
        keep: u32,
    },
    None,
}

impl Writer {
    pub fn open(sink: &EventSink) -> Result<Self> {
        Ok(match sink {
            EventSink::Stdout => Self::Stdout,
            EventSink::None => Self::None,
            EventSink::File {
                path,
                max_bytes,
                keep,
            } => {
                let file = open_append(path)?;
                let written = file.metadata().map(|m| m.len()).unwrap_or(0);
                Self::File {
                    path: path.clone(),
                    file,
                    written,
                    max_bytes: *max_bytes,
                    keep: *keep,
                }
            }
        })
    }

    /// Writes one line (a flow event, or a login from deep inspection); rotates a file sink that
    /// reached its size first.
    pub fn write(&mut self, line: &impl Serialize) -> Result<()> {
        let mut text = serde_json::to_string(line)?;
        text.push('\n');
        match self {
            Self::None => Ok(()),
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()?;
                Ok(())
            }
            Self::File {
                path,
                file,
                written,
                max_bytes,
                keep,
            } => {
                if *written > 0 && *written + text.len() as u64 > *max_bytes {
                    rotate(path, *keep)?;
                    *file = open_append(path)?;
                    *written = 0;
                }
                file.write_all(text.as_bytes())
                    .with_context(|| format!("writing events to {}", path.display()))?;
                *written += text.len() as u64;
                Ok(())
            }
        }
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the event file {}", path.display()))
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(format!(".{n}"));
    PathBuf::from(p)
}

/// `path` becomes `path.1`, `path.1` becomes `path.2`..., keeping `keep` rotated files.
fn rotate(path: &Path, keep: u32) -> Result<()> {
    if keep == 0 {
        std::fs::remove_file(path).with_context(|| format!("rotating {}", path.display()))?;
        return Ok(());
    }
    let _ = std::fs::remove_file(numbered(path, keep));
    for n in (1..keep).rev() {
        let from = numbered(path, n);
        if from.exists() {
            std::fs::rename(&from, numbered(path, n + 1))?;
        }
    }
    std::fs::rename(path, numbered(path, 1)).with_context(|| format!("rotating {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{event, line};

    #[test]
    fn the_file_sink_rotates_and_keeps_what_it_should() {
        let dir = std::env::temp_dir().join(format!("ms-events-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let l = line(&event(), |id| (id == 0).then(|| "kp".to_string()), "eth0");
        let size = serde_json::to_string(&l).unwrap().len() as u64 + 1;
        let mut w = Writer::open(&EventSink::File {
            path: path.clone(),
            max_bytes: size * 3,
            keep: 2,
        })
        .unwrap();
        for _ in 0..10 {
            w.write(&l).unwrap();
        }
        // 10 lines, 3 per file: the current file holds 1, .1 and .2 hold 3 each, older ones gone.
        let lines = |p: &Path| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        assert_eq!(lines(&path), 1);
        assert_eq!(lines(&numbered(&path, 1)), 3);
        assert_eq!(lines(&numbered(&path, 2)), 3);
        assert!(!numbered(&path, 3).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
