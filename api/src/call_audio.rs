//! Call recordings (`post_call_audio` webhooks), written to the audio directory as
//! `<call id>.mp3`: decoded from a webhook body held in memory, or, for a long call whose body is
//! too large to hold, from the body spilled to disk as it arrived, so that a recording of any
//! length never sits whole in memory.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use switchboard_workflows::providers::elevenlabs::EVENT_AUDIO;

/// Why a recording could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The body is not a recording we can read (its id, its JSON, its base64).
    #[error("{0}")]
    Malformed(String),
    /// The disk failed us.
    #[error("storing call audio: {0}")]
    Io(#[from] io::Error),
}

fn malformed(e: impl std::fmt::Display) -> AudioError {
    AudioError::Malformed(e.to_string())
}

/// `<dir>/<call id>.mp3`, for a call id that is safe as a file name.
fn audio_path(dir: &Path, call_id: &str) -> Result<PathBuf, AudioError> {
    let safe = !call_id.is_empty()
        && call_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !safe {
        return Err(malformed(format!("unusable call id {call_id:?}")));
    }
    Ok(dir.join(format!("{call_id}.mp3")))
}

/// Writes decoded `audio` for `call_id` into `dir`; returns the file's path.
pub async fn store(dir: &Path, call_id: &str, audio: &[u8]) -> Result<PathBuf, AudioError> {
    let path = audio_path(dir, call_id)?;
    tokio::fs::create_dir_all(dir).await?;
    tokio::fs::write(&path, audio).await?;
    Ok(path)
}

/// Whether the start of a webhook body announces a recording (`"type": "post_call_audio"`
/// comes first in the provider's envelope).
pub fn announces_audio(head: &[u8]) -> bool {
    let head = &head[..head.len().min(4096)];
    let needle = format!("\"{EVENT_AUDIO}\"");
    head.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A body being written to `<dir>/.incoming-<uuid>.json` as it arrives. Removed when dropped.
pub struct Spill {
    path: PathBuf,
    file: tokio::fs::File,
    written: u64,
}

impl Spill {
    /// Starts a spill file in `dir`.
    pub async fn create(dir: &Path) -> io::Result<Spill> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(format!(".incoming-{}.json", uuid::Uuid::now_v7().simple()));
        let file = tokio::fs::File::create(&path).await?;
        Ok(Spill {
            path,
            file,
            written: 0,
        })
    }

    /// Appends the next piece of the body.
    pub async fn write(&mut self, piece: &[u8]) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.file.write_all(piece).await?;
        self.written += piece.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Decodes the spilled (and verified) webhook's recording into `dir`; returns the call id
    /// and the recording's path.
    pub async fn store(mut self, dir: &Path) -> Result<(String, PathBuf), AudioError> {
        use tokio::io::AsyncWriteExt;
        self.file.flush().await?;
        let (json, dir) = (self.path.clone(), dir.to_owned());
        tokio::task::spawn_blocking(move || decode_spilled(&json, &dir))
            .await
            .map_err(|e| AudioError::Io(io::Error::other(e)))?
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        // Best effort: the spilled body is of no use once handled (or refused).
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The envelope of a recording, without the recording (skipped, never held).
#[derive(Deserialize)]
struct AudioEnvelope {
    #[serde(rename = "type")]
    kind: String,
    data: AudioHead,
}

#[derive(Deserialize)]
struct AudioHead {
    conversation_id: String,
}

fn decode_spilled(json: &Path, dir: &Path) -> Result<(String, PathBuf), AudioError> {
    let open = || std::fs::File::open(json).map(|f| BufReader::with_capacity(1 << 16, f));
    let envelope: AudioEnvelope = serde_json::from_reader(open()?).map_err(malformed)?;
    if envelope.kind != EVENT_AUDIO {
        return Err(malformed(format!("a {} webhook this large", envelope.kind)));
    }
    let call_id = envelope.data.conversation_id;
    let path = audio_path(dir, &call_id)?;
    let part = path.with_extension("mp3.part");
    let written = (|| -> io::Result<()> {
        let mut out = io::BufWriter::new(std::fs::File::create(&part)?);
        copy_base64_string(open()?, "full_audio", &mut out)?;
        out.flush()?;
        std::fs::rename(&part, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&part);
        return Err(match e.kind() {
            io::ErrorKind::InvalidData => malformed(e),
            _ => AudioError::Io(e),
        });
    }
    Ok((call_id, path))
}

/// Decodes the base64 string value of the first `"key":` in a JSON text into `out`, a piece at
/// a time; returns the bytes written. Errors of the text are `InvalidData`.
fn copy_base64_string(json: impl BufRead, key: &str, out: &mut impl Write) -> io::Result<u64> {
    let mut bytes = json.bytes();
    let mut next = || {
        bytes
            .next()
            .unwrap_or_else(|| Err(invalid("the text ends early")))
    };
    // Find the key: a string followed by `:`. Strings are read through, keeping a short head.
    loop {
        if next()? != b'"' {
            continue;
        }
        let head = read_string(&mut next, key.len() + 1)?;
        if next_token(&mut next)? == b':' && head == key.as_bytes() {
            break;
        }
    }
    if next_token(&mut next)? != b'"' {
        return Err(invalid("the value is not a string"));
    }
    const PIECE: usize = 1 << 16; // a multiple of 4: whole base64 quanta
    let mut encoded = Vec::with_capacity(PIECE);
    let mut decoded = Vec::with_capacity(PIECE / 4 * 3);
    let mut total = 0;
    let mut flush = |encoded: &mut Vec<u8>, out: &mut dyn Write| -> io::Result<u64> {
        decoded.clear();
        base64::engine::general_purpose::STANDARD
            .decode_vec(&encoded[..], &mut decoded)
            .map_err(|e| invalid(&format!("the recording is not base64: {e}")))?;
        out.write_all(&decoded)?;
        encoded.clear();
        Ok(decoded.len() as u64)
    };
    loop {
        match next()? {
            b'"' => break,
            b'\\' => match next()? {
                b'/' => encoded.push(b'/'),
                b'n' | b'r' => {}
                _ => return Err(invalid("an unexpected escape in the recording")),
            },
            b => encoded.push(b),
        }
        if encoded.len() == PIECE {
            total += flush(&mut encoded, &mut *out)?;
        }
    }
    total += flush(&mut encoded, &mut *out)?;
    Ok(total)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads a JSON string through its closing quote (the opening one read); returns its first
/// `keep` raw bytes.
fn read_string(next: &mut impl FnMut() -> io::Result<u8>, keep: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let b = next()?;
        let b = match b {
            b'"' => return Ok(head),
            b'\\' => next()?,
            b => b,
        };
        if head.len() < keep {
            head.push(b);
        }
    }
}

/// The next byte that is not whitespace.
fn next_token(next: &mut impl FnMut() -> io::Result<u8>) -> io::Result<u8> {
    loop {
        let b = next()?;
        if !b.is_ascii_whitespace() {
            return Ok(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        copy_base64_string(json.as_bytes(), "full_audio", &mut out)?;
        Ok(out)
    }

    #[test]
    fn a_recording_is_decoded_piece_by_piece() {
        let audio: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&audio);
        let json = format!(
            r#"{{"type":"post_call_audio","data":{{"conversation_id":"c","full_audio" : "{b64}"}}}}"#
        );
        assert_eq!(decode(&json).unwrap(), audio);
        // JSON may escape the slash; a key-like text earlier is not the key.
        let escaped = format!(
            r#"{{"note":"\"full_audio","full_audio":"{}"}}"#,
            b64.replace('/', "\\/")
        );
        assert_eq!(decode(&escaped).unwrap(), audio);
    }

    #[test]
    fn a_broken_recording_is_invalid_data() {
        for json in [
            r#"{"full_audio":"%%%%"}"#,
            r#"{"full_audio":12}"#,
            r#"{"full_audio":"SUQz"#,
            r#"{"other":"SUQz"}"#,
        ] {
            let err = decode(json).expect_err(json);
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{json}");
        }
    }

    #[test]
    fn only_a_recording_announces_itself() {
        assert!(announces_audio(br#"{"type": "post_call_audio", "data": {"#));
        assert!(!announces_audio(
            br#"{"type":"post_call_transcription","data":{"#
        ));
    }
}
