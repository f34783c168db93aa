//! What a client does next: a weighted random pick among the operations
//! possible with what it owns, and what it learns from each answer.
//!
//! Ownership is what keeps the final state predictable (see `workload`):
//! windows, KVM hosts, a source's name and a matrix output each belong to one
//! client; the register window and the scene wall are shared.

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::Rng;

use crate::history::{Mutation, MutationRecord, Outcome, Read};
use crate::workload::{ClientSpec, World};

/// Owned windows per client per wall (a wall holds at most 64).
const MAX_OWN_WINDOWS: usize = 6;
/// Live KVM hosts per client, and the size of its port range.
const MAX_OWN_HOSTS: usize = 8;
const PORTS_PER_CLIENT: u32 = 60;
/// Untracked windows a client opens on the scene wall before it clears it.
const MAX_SCENE_WINDOWS: u32 = 8;

/// What the client owns, as far as it knows from its answers.
#[derive(Default)]
pub struct Owned {
    windows: Vec<(u64, u64)>,
    /// Opens with an unknown outcome, per wall: they may occupy room there.
    unknown_windows: HashMap<u64, usize>,
    hosts: Vec<(u64, u32)>,
    /// Ports of hosts whose create or delete ended unknown: never reused.
    ports_blocked: HashSet<u32>,
    scene_windows: u32,
}

pub enum Choice {
    Read(Read),
    Mutate(Mutation),
}

/// The operations of the mix, with their weights below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pick {
    ReadRegister,
    ReadWall,
    ReadHosts,
    ReadSource,
    ReadMatrix,
    WriteRegister,
    OpenWindow,
    MoveWindow,
    RaiseWindow,
    CloseWindow,
    CreateHost,
    DeleteHost,
    CreateSeat,
    RenameSource,
    SetRoute,
    SceneWindowOrClear,
    SaveOrRecallScene,
}

/// (weight, pick): about 40 % reads, the register the busiest key.
/// Configuration picks are admin-only (an operator's role forbids them).
const MIX: [(u32, Pick, bool); 17] = [
    (14, Pick::ReadRegister, false),
    (8, Pick::ReadWall, false),
    (4, Pick::ReadHosts, false),
    (3, Pick::ReadSource, false),
    (3, Pick::ReadMatrix, false),
    (14, Pick::WriteRegister, false),
    (8, Pick::OpenWindow, false),
    (10, Pick::MoveWindow, false),
    (3, Pick::RaiseWindow, false),
    (4, Pick::CloseWindow, false),
    (3, Pick::CreateHost, true),
    (1, Pick::DeleteHost, true),
    (2, Pick::CreateSeat, true),
    (3, Pick::RenameSource, true),
    (4, Pick::SetRoute, false),
    (3, Pick::SceneWindowOrClear, false),
    (2, Pick::SaveOrRecallScene, false),
];

fn pick(admin: bool, rng: &mut StdRng) -> Pick {
    let allowed = || MIX.iter().filter(move |m| admin || !m.2);
    let total: u32 = allowed().map(|m| m.0).sum();
    let mut at = rng.random_range(0..total.max(1));
    for &(w, p, _) in allowed() {
        if at < w {
            return p;
        }
        at -= w;
    }
    Pick::ReadRegister
}

/// Update what the client owns from a finished mutation.
pub fn learn(owned: &mut Owned, world: &World, rec: &MutationRecord) {
    let acked_id = rec.acked().and_then(|b| b["id"].as_u64());
    let unknown = rec.outcome == Outcome::Unknown;
    match &rec.op {
        Mutation::OpenWindow { wall, .. } => match acked_id {
            Some(id) => owned.windows.push((*wall, id)),
            None if unknown => *owned.unknown_windows.entry(*wall).or_default() += 1,
            None => {}
        },
        // Acked or unknown: either way it is no longer ours to move.
        Mutation::CloseWindow { wall, id } if rec.acked().is_some() || unknown => owned.windows.retain(|w| *w != (*wall, *id)),
        Mutation::CreateHost { port, .. } => match acked_id {
            Some(id) => owned.hosts.push((id, *port)),
            None if unknown => {
                owned.ports_blocked.insert(*port);
            }
            None => {}
        },
        Mutation::DeleteHost { id } if rec.acked().is_some() || unknown => {
            if unknown {
                if let Some((_, p)) = owned.hosts.iter().find(|h| h.0 == *id) {
                    owned.ports_blocked.insert(*p);
                }
            }
            owned.hosts.retain(|h| h.0 != *id);
        }
        Mutation::SaveScene { .. } => {
            if let Some(id) = acked_id {
                world.scenes.lock().unwrap_or_else(|p| p.into_inner()).push(id);
            }
        }
        Mutation::SceneWindow { .. } => owned.scene_windows += 1,
        Mutation::ClearWall { .. } | Mutation::RecallScene { .. } => owned.scene_windows = 0,
        _ => {}
    }
}

/// The next operation, at random (see `MIX`), among those possible now.
pub fn choose(spec: &ClientSpec, world: &World, owned: &mut Owned, rng: &mut StdRng) -> Choice {
    let c = spec.index as u64;
    let (rw, rid) = world.register;
    let kind = pick(spec.admin, rng);
    let wall = world.own_walls[rng.random_range(0..2)];
    let own_source = 13 + c % 4;
    let own_output = 11 + (c % 4) as u32;
    match kind {
        Pick::ReadRegister => Choice::Read(Read::Register { wall: rw, window: rid }),
        Pick::ReadWall => {
            Choice::Read(Read::Windows { wall: [world.own_walls[0], world.own_walls[1], world.scene_wall][rng.random_range(0..3)] })
        }
        Pick::ReadHosts => Choice::Read(Read::Hosts),
        Pick::ReadSource => Choice::Read(Read::Source { id: own_source }),
        Pick::ReadMatrix => Choice::Read(Read::Matrix),
        Pick::WriteRegister => Choice::Mutate(Mutation::RegisterWrite { wall: rw, window: rid, value: world.unique() }),
        Pick::MoveWindow | Pick::RaiseWindow | Pick::CloseWindow if !owned.windows.is_empty() => {
            let (wall, id) = owned.windows[rng.random_range(0..owned.windows.len())];
            Choice::Mutate(match kind {
                Pick::MoveWindow => Mutation::MoveWindow { wall, id, value: world.unique() },
                Pick::RaiseWindow => Mutation::RaiseWindow { wall, id },
                _ => Mutation::CloseWindow { wall, id },
            })
        }
        Pick::OpenWindow | Pick::MoveWindow | Pick::RaiseWindow | Pick::CloseWindow => {
            let mine = owned.windows.iter().filter(|w| w.0 == wall).count() + owned.unknown_windows.get(&wall).copied().unwrap_or(0);
            if mine >= MAX_OWN_WINDOWS {
                if let Some(&(wall, id)) = owned.windows.iter().find(|w| w.0 == wall) {
                    return Choice::Mutate(Mutation::CloseWindow { wall, id });
                }
                return Choice::Read(Read::Windows { wall });
            }
            Choice::Mutate(Mutation::OpenWindow { wall, sig: world.unique(), value: world.unique() })
        }
        Pick::CreateHost | Pick::DeleteHost => {
            if kind == Pick::DeleteHost || owned.hosts.len() >= MAX_OWN_HOSTS {
                if let Some(&(id, _)) = owned.hosts.first() {
                    return Choice::Mutate(Mutation::DeleteHost { id });
                }
            }
            let base = (c as u32 % 4) * PORTS_PER_CLIENT + 1;
            let free = (base..base + PORTS_PER_CLIENT).find(|p| !owned.ports_blocked.contains(p) && !owned.hosts.iter().any(|h| h.1 == *p));
            match free {
                Some(port) => Choice::Mutate(Mutation::CreateHost { name: format!("host-{}-{}", c, world.unique()), port }),
                None => Choice::Read(Read::Hosts),
            }
        }
        Pick::CreateSeat => {
            let host_id = if owned.hosts.is_empty() || rng.random_bool(0.3) {
                None
            } else {
                Some(owned.hosts[rng.random_range(0..owned.hosts.len())].0)
            };
            Choice::Mutate(Mutation::CreateSeat { name: format!("seat-{}-{}", c, world.unique()), host_id })
        }
        Pick::RenameSource => Choice::Mutate(Mutation::RenameSource { id: own_source, name: format!("src-{}-{}", c, world.unique()) }),
        Pick::SetRoute => {
            let input = if rng.random_bool(0.15) { None } else { Some(rng.random_range(1..=16u32)) };
            Choice::Mutate(Mutation::SetRoute { output: own_output, input })
        }
        Pick::SceneWindowOrClear => {
            if owned.scene_windows >= MAX_SCENE_WINDOWS {
                Choice::Mutate(Mutation::ClearWall { wall: world.scene_wall })
            } else {
                Choice::Mutate(Mutation::SceneWindow { wall: world.scene_wall, x: rng.random_range(0..3800), y: rng.random_range(0..1050) })
            }
        }
        Pick::SaveOrRecallScene => {
            let scene = {
                let scenes = world.scenes.lock().unwrap_or_else(|p| p.into_inner());
                scenes.get(rng.random_range(0..scenes.len().max(1))).copied()
            };
            match scene {
                Some(id) if !spec.admin || rng.random_bool(0.5) => Choice::Mutate(Mutation::RecallScene { id }),
                _ if spec.admin => {
                    Choice::Mutate(Mutation::SaveScene { wall: world.scene_wall, name: format!("scene-{}-{}", c, world.unique()) })
                }
                _ => Choice::Read(Read::Windows { wall: world.scene_wall }),
            }
        }
    }
}
