//! Compiled rules, indexed by event type, and the alerts they raise.

use std::sync::LazyLock;

use crate::alert::{Alert, OutputFields};
use crate::eval::{Event, Extracted, Node, Val};
use crate::event_types::{EventTypeSet, EVENT_TYPES};
use crate::fields::{self, FieldArg, ResolvedField};
use crate::fold;
use crate::memo::{number_comparisons, Memo};
use crate::output::{clock_time, OutputFormat};
use crate::priority::Priority;
use crate::time::EventTime;

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub name: String,
    pub description: String,
    pub priority: Priority,
    pub source: String,
    /// Sorted and de-duplicated, as Falco stores tags.
    pub tags: Vec<String>,
    pub enabled: bool,
    /// The macro- and list-expanded condition in libsinsp's canonical form.
    pub condition: String,
    pub filter: Node,
    pub output: OutputFormat,
    pub event_types: EventTypeSet,
}

/// Falco's `rule_matching`: stop at the first matching rule (the default) or report every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matching {
    #[default]
    First,
    All,
}

/// The enabled rules, indexed so that an event is only checked against rules that can match it.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    rules: Vec<CompiledRule>,
    /// For each event type, the enabled rules whose type set contains it, in definition order.
    buckets: Vec<Vec<u32>>,
    /// For each event type, the conditions of its bucket's rules folded for that type (see
    /// [`crate::fold`]): on Falco's rules a third of the comparisons an event reaches test
    /// `evt.type`.
    folded: Vec<Vec<Node>>,
    /// Rules that apply to every type: checked for events of unknown type.
    every_type: Vec<u32>,
    /// Distinct comparisons in all the conditions above (see [`crate::memo`]).
    pub(crate) slots: usize,
    pub matching: Matching,
}

thread_local! {
    /// The comparison results of the event being evaluated on this thread.
    static MEMO: std::cell::RefCell<Memo> = std::cell::RefCell::default();
}

impl Ruleset {
    pub fn new(mut rules: Vec<CompiledRule>) -> Self {
        let mut buckets = vec![Vec::new(); EVENT_TYPES.len()];
        let mut every_type = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if !r.enabled {
                continue;
            }
            for t in r.event_types.iter() {
                buckets[t].push(i as u32);
            }
            if r.event_types.is_all() {
                every_type.push(i as u32);
            }
        }
        // Numbered before folding, so that the folded copies keep their comparisons' slots.
        let slots = number_comparisons(
            rules
                .iter_mut()
                .filter(|r| r.enabled)
                .map(|r| &mut r.filter),
        );
        let folded = buckets
            .iter()
            .enumerate()
            .map(|(t, bucket)| {
                bucket
                    .iter()
                    .map(|&i| fold::for_event_type(&rules[i as usize].filter, EVENT_TYPES[t]))
                    .collect()
            })
            .collect();
        Ruleset {
            rules,
            buckets,
            folded,
            every_type,
            slots,
            matching: Matching::First,
        }
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    pub fn rule(&self, name: &str) -> Option<&CompiledRule> {
        self.rules.iter().find(|r| r.name == name)
    }

    /// The event types some enabled rule needs: what the kernel side should deliver.
    pub fn event_types(&self) -> EventTypeSet {
        self.rules
            .iter()
            .filter(|r| r.enabled)
            .fold(EventTypeSet::empty(), |acc, r| acc.union(&r.event_types))
    }

    /// The rules `event` matches, in definition order (only the first under [`Matching::First`]).
    pub fn evaluate<'r>(&'r self, event: &dyn Event, out: &mut Vec<&'r CompiledRule>) {
        let t = event.event_type();
        let candidates = t.map_or(&self.every_type, |t| &self.buckets[t]);
        if candidates.is_empty() {
            return;
        }
        let folded = t.and_then(|t| self.folded.get(t).filter(|_| has_type_name(event, t)));
        MEMO.with(|cell| match cell.try_borrow_mut() {
            Ok(mut memo) => {
                memo.reset(self.slots);
                self.evaluate_candidates(event, candidates, folded, out, &mut memo);
            }
            // Evaluating from inside an evaluation (an `Event` that evaluates a ruleset): an
            // empty table, which remembers nothing.
            Err(_) => {
                self.evaluate_candidates(event, candidates, folded, out, &mut Memo::default())
            }
        });
    }

    fn evaluate_candidates<'r>(
        &'r self,
        event: &dyn Event,
        candidates: &[u32],
        folded: Option<&Vec<Node>>,
        out: &mut Vec<&'r CompiledRule>,
        memo: &mut Memo,
    ) {
        for (k, &i) in candidates.iter().enumerate() {
            let rule = &self.rules[i as usize];
            let filter = folded.map_or(&rule.filter, |f| &f[k]);
            if filter.eval_memo(event, memo) {
                out.push(rule);
                if self.matching == Matching::First {
                    return;
                }
            }
        }
    }

    /// How many enabled rules could match an event of type `t`.
    pub fn candidates(&self, t: usize) -> usize {
        self.buckets.get(t).map_or(0, Vec::len)
    }
}

/// True when the event's `evt.type` is the name of type `t`, as the folded conditions assume.
fn has_type_name(event: &dyn Event, t: usize) -> bool {
    static EVT_TYPE: LazyLock<ResolvedField> =
        LazyLock::new(|| fields::resolve("evt.type", None).expect("evt.type is a field"));
    matches!(event.extract(&EVT_TYPE), Extracted::One(Val::Str(s)) if s == EVENT_TYPES[t])
}

impl CompiledRule {
    /// The alert Falco's `json_output` would print for this rule and event.
    pub fn alert(&self, event: &dyn Event, hostname: &str) -> Alert {
        let time_field = fields::resolve("evt.time", None).expect("evt.time is a field");
        let ns = match event.extract(&time_field) {
            Extracted::One(Val::Int(ns)) => ns,
            _ => EventTime::now().unix_nanos(),
        };
        let mut output_fields = OutputFields::new();
        self.output.json_fields(event, &mut output_fields);
        output_fields.insert("evt.time".to_string(), serde_json::Value::from(ns));
        debug_assert!(time_field.arg == FieldArg::None);
        Alert {
            hostname: Some(hostname.to_string()),
            output: format!(
                "{}: {} {}",
                clock_time(ns),
                self.priority,
                self.output.render(event)
            ),
            output_fields,
            priority: self.priority,
            rule: self.name.clone(),
            source: self.source.clone(),
            tags: self.tags.clone(),
            time: EventTime::from_unix_nanos(ns),
            uuid: None,
        }
    }
}
