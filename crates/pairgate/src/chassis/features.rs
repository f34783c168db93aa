//! What a chassis' firmware offers beyond the plain API (docs/chassis-api.md,
//! "features"), and the way the gateway works with it as a result.
//!
//! The reference chassis offers every extra; a real chassis may offer none.
//! The gateway reads `GET /system/info` `features` at start and whenever the
//! chassis comes back (`recovery/discovery.rs`), or takes the list a
//! `[[chassis]] features = [...]` line of `gateway.toml` gives for firmware
//! that has no `/system/info`. Nothing here does I/O.

use serde::Serialize;

/// One extra a chassis may offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// `X-Id-Block`: a create takes the ids the gateway gives it.
    IdBlock,
    /// `Idempotency-Key`: a repeat is recognised and not applied twice.
    IdempotencyKey,
    /// `GET /system/digest`: a hash of the whole configuration.
    Digest,
    /// `GET /system/export` and `PUT /system/import`: the whole configuration.
    ExportImport,
    /// `X-Origin-Seq`: calls a chassis makes to others carry keys (cascade).
    OriginSeq,
}

impl Feature {
    pub const ALL: [Feature; 5] = [Feature::IdBlock, Feature::IdempotencyKey, Feature::Digest, Feature::ExportImport, Feature::OriginSeq];

    /// The name a chassis lists it by.
    pub fn name(self) -> &'static str {
        match self {
            Feature::IdBlock => "id_block",
            Feature::IdempotencyKey => "idempotency_key",
            Feature::Digest => "digest",
            Feature::ExportImport => "export_import",
            Feature::OriginSeq => "origin_seq",
        }
    }

    pub fn parse(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`Feature`]s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features(u8);

impl Features {
    pub fn none() -> Features {
        Features(0)
    }

    pub fn all() -> Features {
        Feature::ALL.into_iter().collect()
    }

    pub fn has(self, f: Feature) -> bool {
        self.0 & f.bit() != 0
    }

    pub fn without(self, f: Feature) -> Features {
        Features(self.0 & !f.bit())
    }

    pub fn names(self) -> Vec<&'static str> {
        Feature::ALL.into_iter().filter(|f| self.has(*f)).map(Feature::name).collect()
    }

    /// The features a `/system/info` answer lists; names the gateway does
    /// not know are left out (and returned, for the log).
    pub fn from_info(info: &serde_json::Value) -> (Features, Vec<String>) {
        let mut unknown = Vec::new();
        let mut set = Features::none();
        for name in info["features"].as_array().into_iter().flatten().filter_map(serde_json::Value::as_str) {
            match Feature::parse(name) {
                Some(f) => set = set.with(f),
                None => unknown.push(name.to_string()),
            }
        }
        (set, unknown)
    }

    fn with(self, f: Feature) -> Features {
        Features(self.0 | f.bit())
    }
}

impl FromIterator<Feature> for Features {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> Features {
        iter.into_iter().fold(Features::none(), Features::with)
    }
}

impl Serialize for Features {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

/// Where a chassis' features came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Its `GET /system/info` listed them.
    Reported,
    /// `gateway.toml` says (`[[chassis]] features`); `/system/info` is not asked.
    Configured,
    /// It has no `/system/info` (404) and `gateway.toml` says nothing: none assumed.
    NotReported,
}

/// How the gateway works with one chassis, decided by its features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Modes {
    /// `id_block`: creates take the gateway's ids; `translate`: the chassis
    /// numbers its own rows and the gateway maps ids.
    pub ids: &'static str,
    /// `idempotency_key`: an entry whose outcome is unknown is resent with its
    /// key; `find_out`: never resent blindly (found out, or the chassis rebuilt).
    pub replay: &'static str,
    /// `digest`: states compared by the chassis' digest; `listing`: by what
    /// the gateway reads, canonicalised and hashed.
    pub compare: &'static str,
    /// `export_import`: a rebuild streams one export into the other;
    /// `api`: through ordinary creates, updates and deletes.
    pub rebuild: &'static str,
}

impl Modes {
    pub fn of(f: Features) -> Modes {
        Modes {
            ids: if f.has(Feature::IdBlock) { "id_block" } else { "translate" },
            replay: if f.has(Feature::IdempotencyKey) { "idempotency_key" } else { "find_out" },
            // A chassis' own digest hashes its own IDs: with translated
            // IDs the gateway compares listings in client IDs.
            compare: if f.has(Feature::Digest) && f.has(Feature::IdBlock) { "digest" } else { "listing" },
            rebuild: if f.has(Feature::ExportImport) { "export_import" } else { "api" },
        }
    }
}

/// What the gateway knows of a chassis' firmware.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Discovered {
    pub features: Features,
    pub source: Source,
    pub modes: Modes,
    /// What this gateway cannot do yet with these features, if anything:
    /// said in status and the log instead of failing call after call.
    pub unsupported: Option<String>,
    /// A feature the chassis claims but was caught not honouring (its claim
    /// is set aside from then on, also when it claims it again).
    pub caught: Option<String>,
}

/// The features this gateway still needs, each with what would replace it:
/// none. (Without `digest` it compares listings; without `idempotency_key`
/// an unknown outcome rebuilds the chassis instead of being resent; without
/// `id_block` it translates IDs; without `export_import` it rebuilds through
/// the ordinary API.) Kept so a future need is said, not failed on.
const NEEDED: [(Feature, &str); 0] = [];

impl Discovered {
    pub fn new(features: Features, source: Source) -> Discovered {
        let missing: Vec<String> =
            NEEDED.iter().filter(|(f, _)| !features.has(*f)).map(|(f, needs)| format!("{} ({needs} is not built yet)", f.name())).collect();
        let unsupported = (!missing.is_empty()).then(|| format!("the chassis lacks {}", missing.join(", ")));
        Discovered { features, source, modes: Modes::of(features), unsupported, caught: None }
    }

    /// The chassis answered a create with ids outside the `X-Id-Block` it
    /// was sent (`why` says which): it does not honour the header, whatever
    /// it claims. Worked with as firmware without `id_block`.
    pub fn caught_ignoring_id_block(&self, why: String) -> Discovered {
        let mut d = Discovered::new(self.features.without(Feature::IdBlock), self.source);
        d.caught = Some(why);
        d
    }

    pub fn has(&self, f: Feature) -> bool {
        self.features.has(f)
    }

    /// A new discovery of the same chassis: a claim it was caught not
    /// honouring stays set aside.
    pub fn keeping_what_was_caught(self, before: Option<&Discovered>) -> Discovered {
        match before.and_then(|b| b.caught.clone()) {
            Some(why) => self.caught_ignoring_id_block(why),
            None => self,
        }
    }
}

/// The id of a create's answer (its top-level `id`) when it lies outside
/// the block `[base, end)` the create was sent with.
pub fn id_outside_block(body: &[u8], base: u64, end: u64) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = v.get("id")?.as_u64()?;
    (!(base..end).contains(&id)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_reference_chassis_lists_every_feature_and_needs_nothing_more() {
        let (f, unknown) =
            Features::from_info(&json!({"features": ["id_block", "idempotency_key", "digest", "export_import", "origin_seq"]}));
        assert_eq!(f, Features::all());
        assert!(unknown.is_empty());
        let d = Discovered::new(f, Source::Reported);
        assert_eq!(d.unsupported, None);
        assert_eq!(d.modes, Modes { ids: "id_block", replay: "idempotency_key", compare: "digest", rebuild: "export_import" });
        assert_eq!(
            serde_json::to_value(&d).unwrap()["features"],
            json!(["id_block", "idempotency_key", "digest", "export_import", "origin_seq"])
        );
    }

    #[test]
    fn a_chassis_without_extras_is_worked_with_otherwise_and_says_what_is_missing() {
        let (f, unknown) = Features::from_info(&json!({"features": ["origin_seq", "hdmi_cec"]}));
        assert_eq!(f.names(), vec!["origin_seq"]);
        assert_eq!(unknown, vec!["hdmi_cec".to_string()]);
        let d = Discovered::new(f, Source::Reported);
        assert_eq!(d.modes, Modes { ids: "translate", replay: "find_out", compare: "listing", rebuild: "api" });
        assert_eq!(d.unsupported, None, "every missing extra has its replacement");
        // No list at all (older firmware's /system/info): nothing assumed.
        assert_eq!(Features::from_info(&json!({"serial": "x"})).0, Features::none());
        assert_eq!(Features::all().without(Feature::Digest).names().len(), 4);
    }

    #[test]
    fn a_chassis_caught_ignoring_its_id_block_is_worked_with_as_one_without_and_stays_so() {
        assert_eq!(id_outside_block(br#"{"id": 1, "name": "w"}"#, 40, 105), Some(1));
        assert_eq!(id_outside_block(br#"{"id": 40}"#, 40, 105), None);
        assert_eq!(id_outside_block(br#"{"id": 105}"#, 40, 105), Some(105));
        assert_eq!(id_outside_block(br#"[{"id": 1}]"#, 40, 105), None, "only a create's own id is checked");
        assert_eq!(id_outside_block(b"not json", 40, 105), None);
        let claimed = Discovered::new(Features::all(), Source::Reported);
        let caught = claimed.caught_ignoring_id_block("created id 1 outside 40..105".into());
        assert!(!caught.has(Feature::IdBlock));
        assert_eq!(caught.modes.ids, "translate");
        assert_eq!(caught.unsupported, None, "translated, not unsupported");
        // It comes back claiming id_block again: the claim stays set aside.
        let again = Discovered::new(Features::all(), Source::Reported).keeping_what_was_caught(Some(&caught));
        assert_eq!(again, caught);
        assert_eq!(Discovered::new(Features::all(), Source::Reported).keeping_what_was_caught(Some(&claimed)), claimed);
    }
}
