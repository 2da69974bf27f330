//! The `encrypted_stratum` maps from userspace: the TLS flows whose shape the program records
//! (`TLS_SHAPES`), and the suspect cells the agent counts its verdicts in.
//!
//! Own handles (duplicated file descriptors) rather than borrows of [`Kernel`], so that the agent's
//! judge can write while replay's batch runner holds the program.

use std::os::fd::AsFd as _;

use anyhow::{Context as _, Result, bail};
use aya::maps::{HashMap, Map, MapData, PerCpuArray, PerCpuValues};

use sensor_common::{
    DIR_FROM, DIR_TO, FlowKey, MAX_RANGES, Reason, UNWATCHED_SLOT, suspect_index,
    tls_shape::TlsShape,
};

use super::Kernel;

/// `TLS_SHAPES` and `SUSPECT_FLOWS`, owned.
pub struct ShapeMaps {
    shapes: HashMap<MapData, FlowKey, TlsShape>,
    suspects: PerCpuArray<MapData, u64>,
}

impl Kernel {
    /// Handles of the maps the `encrypted_stratum` judge reads and writes.
    pub fn shape_maps(&self) -> Result<ShapeMaps> {
        let own = |name: &str| -> Result<MapData> {
            let data = match self.ebpf.map(name).with_context(|| format!("map {name}"))? {
                Map::PerCpuArray(m) | Map::LruHashMap(m) => m,
                _ => bail!("map {name} is not of the type the judge expects"),
            };
            Ok(MapData::from_fd(data.fd().as_fd().try_clone_to_owned()?)?)
        };
        Ok(ShapeMaps {
            shapes: HashMap::try_from(Map::LruHashMap(own("TLS_SHAPES")?))?,
            suspects: PerCpuArray::try_from(Map::PerCpuArray(own("SUSPECT_FLOWS")?))?,
        })
    }
}

/// The suspect cells a flow counts in, as the program counts its suspect flows (`count_suspect`):
/// once for every range of the source (`from`) and of the destination (`to`), or once as
/// `unwatched` (stored under `from`) when neither is in a range.
pub fn suspect_cells(src: u64, dst: u64, reason: Reason) -> Vec<u32> {
    if src == 0 && dst == 0 {
        return vec![suspect_index(UNWATCHED_SLOT, DIR_FROM, reason as usize)];
    }
    let mut cells = Vec::new();
    for (ranges, dir) in [(src, DIR_FROM), (dst, DIR_TO)] {
        for r in (0..MAX_RANGES).filter(|r| ranges & (1 << r) != 0) {
            cells.push(suspect_index(r, dir, reason as usize));
        }
    }
    cells
}

impl ShapeMaps {
    /// Every recorded flow. Entries evicted or deleted while iterating end the walk early at
    /// worst; the next call sees them again.
    pub fn flows(&self) -> Vec<(FlowKey, TlsShape)> {
        self.shapes.iter().filter_map(|r| r.ok()).collect()
    }

    /// Stops recording a judged flow.
    pub fn forget(&mut self, key: &FlowKey) -> Result<()> {
        match self.shapes.remove(key) {
            // Evicted meanwhile: forgotten all the same.
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Counts a flow once for `reason` in the program's suspect cells. Only for reasons the
    /// program never counts itself (the agent's verdicts): the cells then have one writer, this,
    /// which adds to the first CPU's value.
    pub fn count_suspect(&mut self, src: u64, dst: u64, reason: Reason) -> Result<()> {
        for cell in suspect_cells(src, dst, reason) {
            let mut values: Vec<u64> = self.suspects.get(&cell, 0)?.iter().copied().collect();
            values[0] += 1;
            self.suspects
                .set(cell, PerCpuValues::try_from(values)?, 0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_counts_in_every_range_of_each_side_or_as_unwatched() {
        // 6 reasons a cell: range r, direction d is (r x 2 + d) x 6 + 5 for encrypted_stratum.
        // Source in ranges 0 and 2, destination in range 1: (0,from) 5, (2,from) 29, (1,to) 23.
        let r = Reason::EncryptedStratum;
        assert_eq!(suspect_cells(0b101, 0b010, r), vec![5, 29, 23]);
        // Neither side watched: the unwatched slot 63, under `from`: 63 x 2 x 6 + 5 = 761.
        assert_eq!(suspect_cells(0, 0, r), vec![761]);
    }
}
