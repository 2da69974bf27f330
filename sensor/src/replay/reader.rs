//! Capture files read a frame at a time: pcap and pcapng, gzip-compressed or not, every record
//! made an Ethernet frame (see `link`). A record that cannot be replayed is a problem in the
//! file's report and is skipped; with `--strict` the first one is the error.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, Cursor, Read},
    path::Path,
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use anyhow::{Context as _, Result, anyhow, bail};
use flate2::bufread::MultiGzDecoder;
use pcap_file::{
    DataLink, PcapError,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader, blocks::interface_description::InterfaceDescriptionOption},
};
use tracing::warn;

use super::{
    link::to_ethernet,
    results::FileReport,
    stream::{Chunked, Counted, Gunzip, describe},
};

/// One packet of a capture, normalised to an Ethernet frame.
pub struct Frame {
    pub ts: Duration,
    pub data: Vec<u8>,
    /// Its length on the wire (more than `data.len()` when the capture cut the record short).
    pub wire_len: usize,
}

/// The decompressed stream, its first bytes (read to tell pcap from pcapng) put back in front.
type Stream<'a> = io::Chain<Cursor<Vec<u8>>, Box<dyn Read + Send + 'a>>;

enum Format<'a> {
    Pcap(PcapReader<Stream<'a>>),
    /// With each interface's link type and timestamp units per second (`if_tsresol`, default
    /// microseconds), as declared so far in the current section.
    PcapNg(PcapNgReader<Stream<'a>>, Vec<(DataLink, u128)>),
}

/// One capture, read a frame at a time, so that memory does not grow with the file: what is held
/// is the readers' buffers (pcap-file's is 8 MB, the largest record it accepts) and nothing more.
pub(super) struct CaptureReader<'a> {
    name: String,
    strict: bool,
    format: Format<'a>,
    /// Records (pcap) or blocks after the section header (pcapng) read so far, for messages.
    record: u64,
    last_ts: Duration,
    done: bool,
}

impl<'a> CaptureReader<'a> {
    /// Reads just enough of `input` to know its format: gzip-compressed or not, pcap or pcapng.
    /// `name` names the capture in messages; with `strict` the first problem is an error.
    fn open(name: String, mut input: impl BufRead + Send + 'a, strict: bool) -> Result<Self> {
        let gzip = input
            .fill_buf()
            .map_err(|e| anyhow!("{name}: cannot read: {e}"))?
            .starts_with(&[0x1f, 0x8b]);
        let mut stream: Box<dyn Read + Send + 'a> = if gzip {
            Box::new(Gunzip(MultiGzDecoder::new(input)))
        } else {
            Box::new(input)
        };
        let mut head = Vec::with_capacity(4);
        stream
            .by_ref()
            .take(4)
            .read_to_end(&mut head)
            .map_err(|e| {
                if gzip {
                    anyhow!("{name}: {e}")
                } else {
                    anyhow!("{name}: cannot read: {e}")
                }
            })?;
        let magic = <[u8; 4]>::try_from(head.as_slice())
            .ok()
            .map(u32::from_le_bytes);
        let stream =
            Cursor::new(head).chain(Box::new(Chunked(stream)) as Box<dyn Read + Send + 'a>);
        let format = match magic {
            Some(0x0a0d0d0a) => Format::PcapNg(
                PcapNgReader::new(stream)
                    .map_err(|e| anyhow!("{name}: not a valid pcapng file: {}", describe(&e)))?,
                Vec::new(),
            ),
            Some(0xa1b2c3d4 | 0xd4c3b2a1 | 0xa1b23c4d | 0x4d3cb2a1) => Format::Pcap(
                PcapReader::new(stream)
                    .map_err(|e| anyhow!("{name}: not a valid pcap file: {}", describe(&e)))?,
            ),
            _ => bail!("{name}: neither pcap nor pcapng (nor gzip-compressed either)"),
        };
        Ok(Self {
            name,
            strict,
            format,
            record: 0,
            last_ts: Duration::ZERO,
            done: false,
        })
    }

    /// The next frame, or `None` once the file is done (at its end, or at a record that leaves the
    /// rest unreadable). Problems are recorded in `report`, which also counts the frames; with
    /// `strict` the first problem is the error.
    pub(super) fn next_frame(&mut self, report: &mut FileReport) -> Result<Option<Frame>> {
        let Self {
            name,
            strict,
            format,
            record,
            last_ts,
            done,
        } = self;
        let problem = |report: &mut FileReport, msg: String| -> Result<()> {
            if *strict {
                bail!("{name}: {msg} (--strict)");
            }
            warn!("{name}: {msg}");
            report.problems.push(msg);
            Ok(())
        };
        while !*done {
            let (ts, (data, wire_len)) = match format {
                Format::Pcap(r) => {
                    let link = r.header().datalink;
                    let resolution = r.header().ts_resolution;
                    // Raw records, checked here: pcap-file 2.0 refuses a record whose original
                    // length exceeds the file's snap length, which is every record cut short
                    // by `tcpdump -s`.
                    let Some(p) = r.next_raw_packet() else {
                        *done = true;
                        break;
                    };
                    *record += 1;
                    let n = *record;
                    let p = match p.and_then(|p| checked_record(p, resolution)) {
                        Ok(p) => p,
                        Err(e) => {
                            *done = true;
                            problem(
                                report,
                                format!(
                                    "record {n}: {}; the rest of the file is unreadable",
                                    describe(&e)
                                ),
                            )?;
                            break;
                        }
                    };
                    match to_ethernet(link, &p.data, p.orig_len) {
                        Ok(data) => (p.timestamp, data),
                        Err(e) => {
                            problem(report, format!("record {n}: {e}"))?;
                            report.skipped += 1;
                            if n == 1 && e.link_unsupported {
                                // The link type is the whole file's: one message for the file,
                                // not one per packet.
                                report.skipped += r.by_ref_count();
                                *done = true;
                            }
                            continue;
                        }
                    }
                }
                Format::PcapNg(r, ifaces) => {
                    let Some(block) = r.next_block() else {
                        *done = true;
                        break;
                    };
                    *record += 1;
                    let n = *record;
                    let block = match block {
                        Ok(b) => b,
                        Err(e) => {
                            *done = true;
                            problem(
                                report,
                                format!(
                                    "block {n}: {}; the rest of the file is unreadable",
                                    describe(&e)
                                ),
                            )?;
                            break;
                        }
                    };
                    match block {
                        Block::SectionHeader(_) => {
                            ifaces.clear();
                            continue;
                        }
                        Block::InterfaceDescription(idb) => {
                            let mut per_second: u128 = 1_000_000;
                            for o in &idb.options {
                                if let InterfaceDescriptionOption::IfTsResol(r) = o {
                                    per_second = if r & 0x80 != 0 {
                                        1u128 << (r & 0x7f)
                                    } else {
                                        10u128.pow((*r as u32).min(30))
                                    };
                                }
                            }
                            ifaces.push((idb.linktype, per_second));
                            continue;
                        }
                        Block::EnhancedPacket(epb) => {
                            let Some(&(link, per_second)) = ifaces.get(epb.interface_id as usize)
                            else {
                                problem(
                                    report,
                                    format!(
                                        "block {n}: packet of undeclared interface {}",
                                        epb.interface_id
                                    ),
                                )?;
                                report.skipped += 1;
                                continue;
                            };
                            // pcap-file hands the raw timestamp over as nanoseconds.
                            let units = epb.timestamp.as_nanos();
                            let ts = Duration::from_nanos(
                                (units / per_second * 1_000_000_000
                                    + units % per_second * 1_000_000_000 / per_second)
                                    as u64,
                            );
                            match to_ethernet(link, &epb.data, epb.original_len) {
                                Ok(data) => (ts, data),
                                Err(e) => {
                                    problem(report, format!("block {n}: {e}"))?;
                                    report.skipped += 1;
                                    continue;
                                }
                            }
                        }
                        Block::SimplePacket(spb) => match ifaces.first() {
                            Some(&(link, _)) => {
                                match to_ethernet(link, &spb.data, spb.original_len) {
                                    // Simple packet blocks carry no timestamp: the previous packet's.
                                    Ok(data) => (*last_ts, data),
                                    Err(e) => {
                                        problem(report, format!("block {n}: {e}"))?;
                                        report.skipped += 1;
                                        continue;
                                    }
                                }
                            }
                            None => {
                                problem(
                                    report,
                                    format!("block {n}: simple packet before any interface"),
                                )?;
                                report.skipped += 1;
                                continue;
                            }
                        },
                        _ => continue,
                    }
                }
            };
            *last_ts = ts;
            report.packets += 1;
            return Ok(Some(Frame { ts, data, wire_len }));
        }
        Ok(None)
    }
}

/// A pcap record with its timestamp and lengths checked as pcap-file does, except that the
/// original length may exceed the snap length (that is what a snap length cuts).
fn checked_record(
    raw: pcap_file::pcap::RawPcapPacket<'_>,
    resolution: pcap_file::TsResolution,
) -> Result<pcap_file::pcap::PcapPacket<'_>, PcapError> {
    let nanos = match resolution {
        pcap_file::TsResolution::MicroSecond => raw.ts_frac.checked_mul(1000),
        pcap_file::TsResolution::NanoSecond => Some(raw.ts_frac),
    }
    .filter(|&n| n < 1_000_000_000)
    .ok_or(PcapError::InvalidField(
        "PacketHeader ts_frac is not below one second",
    ))?;
    if raw.incl_len > raw.orig_len {
        return Err(PcapError::InvalidField("PacketHeader incl_len > orig_len"));
    }
    Ok(pcap_file::pcap::PcapPacket {
        timestamp: Duration::new(raw.ts_sec as u64, nanos),
        orig_len: raw.orig_len,
        data: raw.data,
    })
}

/// Opens a capture file for `CaptureReader`, the bytes read from it added to `consumed`; also
/// returns the file's size.
pub(super) fn open_capture(
    path: &Path,
    strict: bool,
    consumed: &Arc<AtomicU64>,
) -> Result<(CaptureReader<'static>, u64)> {
    let name = path.display().to_string();
    let file = File::open(path).with_context(|| format!("{name}: cannot open"))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let input = BufReader::new(Counted {
        inner: file,
        total: Arc::clone(consumed),
    });
    Ok((CaptureReader::open(name, input, strict)?, size))
}

/// Parses a capture held in memory with `CaptureReader`; `name` names it in messages. Public for
/// the fuzz target: no input may make it panic.
pub fn parse_capture(
    name: &str,
    raw: Vec<u8>,
    strict: bool,
    report: &mut FileReport,
) -> Result<Vec<Frame>> {
    let mut reader = CaptureReader::open(name.to_string(), Cursor::new(raw), strict)?;
    let mut frames = Vec::new();
    while let Some(frame) = reader.next_frame(report)? {
        frames.push(frame);
    }
    Ok(frames)
}

trait CountRest {
    fn by_ref_count(&mut self) -> u64;
}

impl<R: Read> CountRest for PcapReader<R> {
    fn by_ref_count(&mut self) -> u64 {
        let mut n = 0;
        while let Some(Ok(_)) = self.next_packet() {
            n += 1;
        }
        n
    }
}
