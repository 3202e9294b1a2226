//! The object's maps by name, whether they come from a fresh load (aya's Ebpf) or from the
//! pins a loader before this one left (crate::pins).

use std::collections::HashMap;
use std::path::Path;

use aya::maps::{Map, MapData};
use aya::Ebpf;

#[derive(Default)]
pub struct Maps {
    maps: HashMap<String, Map>,
}

impl Maps {
    /// Takes every map out of a freshly loaded object (its programs keep their own references).
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Maps {
        let names: Vec<String> = ebpf.maps().map(|(n, _)| n.to_string()).collect();
        let maps = names.into_iter().filter_map(|n| ebpf.take_map(&n).map(|m| (n, m))).collect();
        Maps { maps }
    }

    /// Opens the maps pinned under `dir`, one file per map.
    pub fn from_pins(dir: &Path) -> Result<Maps, String> {
        let mut maps = HashMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let data = MapData::from_pin(entry.path()).map_err(|e| format!("pinned map {name}: {e}"))?;
            let map = Map::from_map_data(data).map_err(|e| format!("pinned map {name}: {e}"))?;
            maps.insert(name, map);
        }
        Ok(Maps { maps })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Map)> {
        self.maps.iter().map(|(n, m)| (n.as_str(), m))
    }

    pub fn take(&mut self, name: &str) -> Option<Map> {
        self.maps.remove(name)
    }

    pub fn get(&self, name: &str) -> Option<&Map> {
        self.maps.get(name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Map> {
        self.maps.get_mut(name)
    }
}
