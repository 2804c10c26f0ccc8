//! The model of the coordination primitives' Redis operations (the client's
//! `transport::redis::coordination_seam`): each Lua script of `src/client/coordination/redis/*.lua` and
//! each plain command, carried out on the model's data as the script does, with the same
//! replies. Lease expiries follow the server's clock as `TIME` does: the executor's wall
//! clock, jumps included; key expiries (`PEXPIRE`, `PEXPIREAT`) too.
//!
//! [`ModelLinks`] connects a client's coordination backend to a [`Model`]: its operations go
//! through the model's command path (faults, restarts and all), its wake-ups are the
//! scripts' `PUBLISH`es, delivered to every subscriber.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, Either, select};
use redis::Value;

use super::{Data, Model, refused};
use crate::error::Error;
use crate::executor::Executor;
use crate::transport::redis::coordination_seam::{Connector, Link, Op, Script, TopicMessage, Wake};
use crate::transport::redis::store::StoreError;

/// One key's value.
#[derive(Debug, Clone)]
enum Held {
    Text(Vec<u8>),
    /// Members and their scores (integers here: expiries in ms).
    Sorted(BTreeMap<String, i64>),
    List(VecDeque<Vec<u8>>),
    Hash(BTreeMap<String, Vec<u8>>),
    /// A set's members (the datasets' index).
    Set(BTreeSet<String>),
    /// A topic's messages (field `m`) by id, and the last id given.
    Stream {
        entries: BTreeMap<(u64, u64), Vec<u8>>,
        last: (u64, u64),
    },
}

/// The coordination keys of the modelled server, each with its expiry (server ms).
#[derive(Debug, Clone, Default)]
pub(super) struct CoordData {
    keys: BTreeMap<String, (Held, Option<u64>)>,
}

type Reply = Result<Value, StoreError>;

/// A topic stream's entries and last id, to change in place.
type StreamParts<'a> = (&'a mut BTreeMap<(u64, u64), Vec<u8>>, &'a mut (u64, u64));

fn text(bytes: impl Into<Vec<u8>>) -> Value {
    Value::BulkString(bytes.into())
}

fn pair(status: &str, value: Value) -> Value {
    Value::Array(vec![text(status), value])
}

fn wrong_type(operation: &'static str) -> StoreError {
    refused(operation, "WRONGTYPE Operation against a key holding the wrong kind of value".into())
}

fn bad_arguments(operation: &'static str) -> StoreError {
    refused(operation, format!("ERR taskweave {operation}: bad arguments"))
}

/// Lua's `tonumber` of an argument, for the integers the scripts are given.
fn number(arg: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(arg).ok()?.trim();
    text.parse::<i64>().ok().or_else(|| {
        let float = text.parse::<f64>().ok()?;
        (float.is_finite() && float.fract() == 0.0).then_some(float as i64)
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl CoordData {
    /// The live value of `key`, dropping it if it expired.
    fn get(&mut self, key: &str, wall: u64) -> Option<&mut Held> {
        if let Some((_, Some(expiry))) = self.keys.get(key)
            && wall > *expiry
        {
            self.keys.remove(key);
        }
        self.keys.get_mut(key).map(|(held, _)| held)
    }

    fn exists(&mut self, key: &str, wall: u64) -> bool {
        self.get(key, wall).is_some()
    }

    fn del(&mut self, key: &str, wall: u64) -> bool {
        let existed = self.exists(key, wall);
        self.keys.remove(key);
        existed
    }

    /// Drops `key` if it is an empty collection (as Redis does).
    fn drop_empty(&mut self, key: &str) {
        let empty = match self.keys.get(key) {
            Some((Held::Sorted(members), _)) => members.is_empty(),
            Some((Held::List(items), _)) => items.is_empty(),
            Some((Held::Hash(fields), _)) => fields.is_empty(),
            Some((Held::Set(members), _)) => members.is_empty(),
            _ => false,
        };
        if empty {
            self.keys.remove(key);
        }
    }

    fn get_text(
        &mut self,
        key: &str,
        wall: u64,
        op: &'static str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(key, wall) {
            None => Ok(None),
            Some(Held::Text(value)) => Ok(Some(value.clone())),
            Some(_) => Err(wrong_type(op)),
        }
    }

    /// `SET key value` (drops any expiry).
    fn set_text(&mut self, key: &str, value: Vec<u8>) {
        self.keys.insert(key.to_owned(), (Held::Text(value), None));
    }

    fn sorted(
        &mut self,
        key: &str,
        wall: u64,
        op: &'static str,
    ) -> Result<Option<&mut BTreeMap<String, i64>>, StoreError> {
        match self.get(key, wall) {
            None => Ok(None),
            Some(Held::Sorted(members)) => Ok(Some(members)),
            Some(_) => Err(wrong_type(op)),
        }
    }

    fn sorted_or_new(
        &mut self,
        key: &str,
        wall: u64,
        op: &'static str,
    ) -> Result<&mut BTreeMap<String, i64>, StoreError> {
        if self.sorted(key, wall, op)?.is_none() {
            self.keys.insert(key.to_owned(), (Held::Sorted(BTreeMap::new()), None));
        }
        Ok(self.sorted(key, wall, op)?.expect("just made"))
    }

    /// `ZREMRANGEBYSCORE key -inf bound`.
    fn remove_scored_up_to(
        &mut self,
        key: &str,
        bound: i64,
        wall: u64,
        op: &'static str,
    ) -> Result<(), StoreError> {
        if let Some(members) = self.sorted(key, wall, op)? {
            members.retain(|_, score| *score > bound);
        }
        self.drop_empty(key);
        Ok(())
    }

    /// `PEXPIREAT key` its highest score + 1 (as the lease scripts do).
    fn expire_after_last(&mut self, key: &str) {
        if let Some((Held::Sorted(members), expiry)) = self.keys.get_mut(key) {
            // ZRANGE -1 -1 WITHSCORES: the highest score (ties by member, same score).
            if let Some(last) = members.values().max() {
                *expiry = Some(u64::try_from(last.saturating_add(1)).unwrap_or(0));
            }
        }
    }

    fn hash(
        &mut self,
        key: &str,
        wall: u64,
        op: &'static str,
    ) -> Result<Option<&mut BTreeMap<String, Vec<u8>>>, StoreError> {
        match self.get(key, wall) {
            None => Ok(None),
            Some(Held::Hash(fields)) => Ok(Some(fields)),
            Some(_) => Err(wrong_type(op)),
        }
    }

    fn hget(
        &mut self,
        key: &str,
        field: &str,
        wall: u64,
        op: &'static str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.hash(key, wall, op)?.and_then(|fields| fields.get(field).cloned()))
    }

    fn hset(
        &mut self,
        key: &str,
        pairs: &[(&str, Vec<u8>)],
        wall: u64,
        op: &'static str,
    ) -> Result<(), StoreError> {
        if self.hash(key, wall, op)?.is_none() {
            self.keys.insert(key.to_owned(), (Held::Hash(BTreeMap::new()), None));
        }
        let fields = self.hash(key, wall, op)?.expect("just made");
        for (field, value) in pairs {
            fields.insert((*field).to_owned(), value.clone());
        }
        Ok(())
    }

    fn list(
        &mut self,
        key: &str,
        wall: u64,
        op: &'static str,
    ) -> Result<Option<&mut VecDeque<Vec<u8>>>, StoreError> {
        match self.get(key, wall) {
            None => Ok(None),
            Some(Held::List(items)) => Ok(Some(items)),
            Some(_) => Err(wrong_type(op)),
        }
    }

    fn list_or_new(
        &mut self,
        key: &str,
        wall: u64,
        op: &'static str,
    ) -> Result<&mut VecDeque<Vec<u8>>, StoreError> {
        if self.list(key, wall, op)?.is_none() {
            self.keys.insert(key.to_owned(), (Held::List(VecDeque::new()), None));
        }
        Ok(self.list(key, wall, op)?.expect("just made"))
    }

    fn llen(&mut self, key: &str, wall: u64, op: &'static str) -> Result<usize, StoreError> {
        Ok(self.list(key, wall, op)?.map_or(0, |items| items.len()))
    }

    fn set(
        &mut self,
        key: &str,
        wall: u64,
        op: &'static str,
    ) -> Result<Option<&mut BTreeSet<String>>, StoreError> {
        match self.get(key, wall) {
            None => Ok(None),
            Some(Held::Set(members)) => Ok(Some(members)),
            Some(_) => Err(wrong_type(op)),
        }
    }

    fn stream(
        &mut self,
        key: &str,
        wall: u64,
        op: &'static str,
    ) -> Result<Option<StreamParts<'_>>, StoreError> {
        match self.get(key, wall) {
            None => Ok(None),
            Some(Held::Stream { entries, last }) => Ok(Some((entries, last))),
            Some(_) => Err(wrong_type(op)),
        }
    }
}

/// Where each script's keys and arguments are, by position.
fn key(keys: &[String], index: usize, op: &'static str) -> Result<String, StoreError> {
    keys.get(index).cloned().ok_or_else(|| bad_arguments(op))
}

fn argument<'a>(
    args: &'a [Vec<u8>],
    index: usize,
    op: &'static str,
) -> Result<&'a [u8], StoreError> {
    args.get(index).map(Vec::as_slice).ok_or_else(|| bad_arguments(op))
}

/// What a script may break on purpose (see `crate::planted`).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Bugs {
    /// The acquire drops leases that expire within one lease timeout, live ones included.
    pub(super) acquire_ignores_expiry: bool,
    /// The refresh extends a lease whether or not it is still held (re-adding one that
    /// expired).
    pub(super) refresh_revives: bool,
}

/// Carries out `op` on `data` at server time `wall` (ms); `publish` gets each channel a
/// script publishes to.
pub(super) fn run(
    data: &mut CoordData,
    op: &Op,
    wall: u64,
    bugs: Bugs,
    publish: &mut dyn FnMut(String),
) -> Reply {
    let now = i64::try_from(wall).unwrap_or(i64::MAX);
    match op {
        Op::Del(keys) => {
            let removed = keys.iter().filter(|key| data.del(key, wall)).count();
            Ok(Value::Int(removed as i64))
        }
        Op::Llen(key) => Ok(Value::Int(data.llen(key, wall, "LLEN")? as i64)),
        Op::Mget(keys) => Ok(Value::Array(
            keys.iter()
                .map(|key| match data.get(key, wall) {
                    Some(Held::Text(value)) => text(value.clone()),
                    _ => Value::Nil,
                })
                .collect(),
        )),
        Op::Exists(key) => Ok(Value::Int(i64::from(data.exists(key, wall)))),
        Op::Sadd(key, member) => {
            if data.set(key, wall, "SADD")?.is_none() {
                data.keys.insert(key.clone(), (Held::Set(BTreeSet::new()), None));
            }
            let members = data.set(key, wall, "SADD")?.expect("just made");
            Ok(Value::Int(i64::from(members.insert(member.clone()))))
        }
        Op::Srem(key, member) => {
            let removed =
                data.set(key, wall, "SREM")?.is_some_and(|members| members.remove(member));
            data.drop_empty(key);
            Ok(Value::Int(i64::from(removed)))
        }
        Op::Smembers(key) => Ok(Value::Array(
            data.set(key, wall, "SMEMBERS")?
                .map(|members| members.iter().map(|member| text(member.as_str())).collect())
                .unwrap_or_default(),
        )),
        Op::Script { script, keys, args } => {
            let name = script.name();
            match script {
                Script::LeaseAcquire => {
                    let (leases, max_key) = (key(keys, 0, name)?, key(keys, 1, name)?);
                    let max = number(argument(args, 0, name)?);
                    let timeout = number(argument(args, 1, name)?);
                    let id = argument(args, 2, name)?;
                    let (Some(max), Some(timeout)) = (max, timeout) else {
                        return Err(bad_arguments(name));
                    };
                    if max < 1 || timeout < 1 || id.is_empty() {
                        return Err(bad_arguments(name));
                    }
                    let id = lossy(id);
                    let recorded = data.get_text(&max_key, wall, name)?;
                    if let Some(recorded) = &recorded
                        && number(recorded) != Some(max)
                    {
                        return Ok(pair("max", text(recorded.clone())));
                    }
                    if recorded.is_none() {
                        data.set_text(&max_key, argument(args, 0, name)?.to_vec());
                    }
                    let bound = if bugs.acquire_ignores_expiry { now + timeout } else { now };
                    data.remove_scored_up_to(&leases, bound, wall, name)?;
                    let (held, count) = match data.sorted(&leases, wall, name)? {
                        Some(members) => (members.contains_key(&id), members.len() as i64),
                        None => (false, 0),
                    };
                    if held || count < max {
                        data.sorted_or_new(&leases, wall, name)?.insert(id, now + timeout);
                        data.expire_after_last(&leases);
                        return Ok(pair("granted", text("")));
                    }
                    let first = data
                        .sorted(&leases, wall, name)?
                        .and_then(|members| members.values().min().copied())
                        .unwrap_or(now);
                    Ok(pair("busy", text((first - now).max(1).to_string())))
                }
                Script::LeaseRefresh => {
                    let leases = key(keys, 0, name)?;
                    let Some(timeout) = number(argument(args, 0, name)?).filter(|t| *t >= 1) else {
                        return Err(bad_arguments(name));
                    };
                    let id = lossy(argument(args, 1, name)?);
                    data.remove_scored_up_to(&leases, now, wall, name)?;
                    if bugs.refresh_revives {
                        data.sorted_or_new(&leases, wall, name)?.insert(id, now + timeout);
                        data.expire_after_last(&leases);
                        return Ok(Value::Int(1));
                    }
                    let Some(members) = data.sorted(&leases, wall, name)? else {
                        return Ok(Value::Int(0));
                    };
                    let Some(score) = members.get_mut(&id) else { return Ok(Value::Int(0)) };
                    *score = now + timeout;
                    data.expire_after_last(&leases);
                    Ok(Value::Int(1))
                }
                Script::LeaseRelease => {
                    let leases = key(keys, 0, name)?;
                    let id = lossy(argument(args, 0, name)?);
                    let channel = lossy(argument(args, 1, name)?);
                    data.remove_scored_up_to(&leases, now, wall, name)?;
                    let removed = data
                        .sorted(&leases, wall, name)?
                        .is_some_and(|members| members.remove(&id).is_some());
                    data.drop_empty(&leases);
                    if removed {
                        publish(channel);
                    }
                    Ok(Value::Int(i64::from(removed)))
                }
                Script::LeaseCount => {
                    let leases = key(keys, 0, name)?;
                    let count = data.sorted(&leases, wall, name)?.map_or(0, |members| {
                        members.values().filter(|score| **score > now).count()
                    });
                    Ok(Value::Int(count as i64))
                }
                Script::EventSet => {
                    let (flag, generation) = (key(keys, 0, name)?, key(keys, 1, name)?);
                    let channel = lossy(argument(args, 0, name)?);
                    data.set_text(&flag, b"1".to_vec());
                    let count = match data.get_text(&generation, wall, name)? {
                        None => 0,
                        Some(value) => std::str::from_utf8(&value)
                            .ok()
                            .and_then(|value| value.parse::<i64>().ok())
                            .ok_or_else(|| {
                                refused(name, "ERR value is not an integer or out of range".into())
                            })?,
                    };
                    let expiry = data.keys.get(&generation).and_then(|(_, expiry)| *expiry);
                    data.keys.insert(
                        generation,
                        (Held::Text((count + 1).to_string().into_bytes()), expiry),
                    );
                    publish(channel);
                    Ok(Value::Int(1))
                }
                Script::QueuePush => {
                    let (items, meta) = (key(keys, 0, name)?, key(keys, 1, name)?);
                    let type_name = argument(args, 0, name)?.to_vec();
                    let asked = argument(args, 1, name)?.to_vec();
                    let channel = lossy(argument(args, 2, name)?);
                    let item = argument(args, 3, name)?.to_vec();
                    let stored = data.hget(&meta, "type", wall, name)?;
                    if let Some(stored) = &stored
                        && *stored != type_name
                    {
                        return Ok(pair("type", text(stored.clone())));
                    }
                    let mut capacity = data.hget(&meta, "capacity", wall, name)?;
                    if !asked.is_empty() {
                        if number(&asked).is_none() {
                            return Err(refused(
                                name,
                                "ERR taskweave queue_push: bad capacity".into(),
                            ));
                        }
                        if let Some(capacity) = &capacity
                            && *capacity != asked
                        {
                            return Ok(pair("capacity", text(capacity.clone())));
                        }
                    }
                    if stored.is_none() {
                        data.hset(&meta, &[("type", type_name)], wall, name)?;
                    }
                    if !asked.is_empty() && capacity.is_none() {
                        data.hset(&meta, &[("capacity", asked.clone())], wall, name)?;
                        capacity = Some(asked);
                    }
                    if let Some(capacity) = &capacity {
                        let bound = number(capacity).unwrap_or(i64::MAX);
                        if data.llen(&items, wall, name)? as i64 >= bound {
                            return Ok(pair("full", text(capacity.clone())));
                        }
                    }
                    data.list_or_new(&items, wall, name)?.push_back(item);
                    publish(channel);
                    Ok(pair("pushed", text("")))
                }
                Script::QueuePop => {
                    let (items, meta, receipt) =
                        (key(keys, 0, name)?, key(keys, 1, name)?, key(keys, 2, name)?);
                    let type_name = argument(args, 0, name)?.to_vec();
                    let n = number(argument(args, 1, name)?);
                    let minimum = number(argument(args, 2, name)?);
                    let channel = lossy(argument(args, 3, name)?);
                    let keep = number(argument(args, 4, name)?);
                    let (Some(n), Some(minimum), Some(keep)) = (n, minimum, keep) else {
                        return Err(bad_arguments(name));
                    };
                    if n < 1 || minimum < 1 || keep < 1 {
                        return Err(bad_arguments(name));
                    }
                    if data.exists(&receipt, wall) {
                        let taken = data.list(&receipt, wall, name)?.cloned().unwrap_or_default();
                        return Ok(pair(
                            "items",
                            Value::Array(taken.into_iter().map(text).collect()),
                        ));
                    }
                    let stored = data.hget(&meta, "type", wall, name)?;
                    if let Some(stored) = &stored
                        && *stored != type_name
                    {
                        return Ok(pair("type", text(stored.clone())));
                    }
                    if stored.is_none() {
                        data.hset(&meta, &[("type", type_name)], wall, name)?;
                    }
                    if let Some(capacity) = data.hget(&meta, "capacity", wall, name)?
                        && let Some(bound) = number(&capacity)
                        && n > bound
                    {
                        return Ok(pair("capacity", text(bound.to_string())));
                    }
                    let length = data.llen(&items, wall, name)? as i64;
                    if length < minimum {
                        return Ok(pair("short", text(length.to_string())));
                    }
                    let queue = data.list_or_new(&items, wall, name)?;
                    let count = usize::try_from(n).unwrap_or(usize::MAX).min(queue.len());
                    let taken: Vec<Vec<u8>> = queue.drain(..count).collect();
                    data.drop_empty(&items);
                    data.list_or_new(&receipt, wall, name)?.extend(taken.iter().cloned());
                    if let Some((_, expiry)) = data.keys.get_mut(&receipt) {
                        *expiry = Some(wall + u64::try_from(keep).unwrap_or(0));
                    }
                    publish(channel);
                    Ok(pair("items", Value::Array(taken.into_iter().map(text).collect())))
                }
                Script::QueueUnpop => {
                    let (items, receipt) = (key(keys, 0, name)?, key(keys, 1, name)?);
                    let channel = lossy(argument(args, 0, name)?);
                    let put_back = &args[1..];
                    if !put_back.is_empty() {
                        let queue = data.list_or_new(&items, wall, name)?;
                        for item in put_back.iter().rev() {
                            queue.push_front(item.clone());
                        }
                    }
                    data.del(&receipt, wall);
                    publish(channel);
                    Ok(Value::Int(put_back.len() as i64))
                }
                Script::VariableSet => {
                    let variable = key(keys, 0, name)?;
                    let type_name = argument(args, 0, name)?.to_vec();
                    let value = argument(args, 1, name)?.to_vec();
                    let channel = lossy(argument(args, 2, name)?);
                    if let Some(stored) = data.hget(&variable, "type", wall, name)?
                        && stored != type_name
                    {
                        return Ok(pair("type", text(stored)));
                    }
                    data.hset(
                        &variable,
                        &[("type", type_name), ("state", b"set".to_vec()), ("value", value)],
                        wall,
                        name,
                    )?;
                    publish(channel);
                    Ok(pair("set", text("")))
                }
                Script::VariableGet => {
                    let variable = key(keys, 0, name)?;
                    let type_name = argument(args, 0, name)?.to_vec();
                    let Some(stored) = data.hget(&variable, "type", wall, name)? else {
                        data.hset(
                            &variable,
                            &[("type", type_name), ("state", b"unset".to_vec())],
                            wall,
                            name,
                        )?;
                        return Ok(pair("unset", text("")));
                    };
                    if stored != type_name {
                        return Ok(pair("type", text(stored)));
                    }
                    let state = data.hget(&variable, "state", wall, name)?;
                    if state.as_deref() == Some(b"set") {
                        let value = data.hget(&variable, "value", wall, name)?;
                        return Ok(Value::Array(match value {
                            Some(value) => vec![text("set"), text(value)],
                            // Lua's false ends the table there.
                            None => vec![text("set")],
                        }));
                    }
                    Ok(pair(
                        &state.map_or_else(|| "unset".to_owned(), |state| lossy(&state)),
                        text(""),
                    ))
                }
                Script::VariableDelete => {
                    let variable = key(keys, 0, name)?;
                    let channel = lossy(argument(args, 0, name)?);
                    if data.hget(&variable, "state", wall, name)?.as_deref() != Some(b"set") {
                        return Ok(Value::Int(0));
                    }
                    data.hset(&variable, &[("state", b"deleted".to_vec())], wall, name)?;
                    if let Some(fields) = data.hash(&variable, wall, name)? {
                        fields.remove("value");
                    }
                    publish(channel);
                    Ok(Value::Int(1))
                }
                Script::DatasetPublish => {
                    let (value_key, type_key) = (key(keys, 0, name)?, key(keys, 1, name)?);
                    let type_name = argument(args, 0, name)?.to_vec();
                    let value = argument(args, 1, name)?.to_vec();
                    let replace = argument(args, 2, name)? == b"1";
                    if !replace && data.exists(&value_key, wall) {
                        let stored = data.get_text(&type_key, wall, name)?.unwrap_or_default();
                        return Ok(pair("taken", text(stored)));
                    }
                    data.set_text(&value_key, value);
                    data.set_text(&type_key, type_name);
                    Ok(pair("published", text("")))
                }
                Script::TopicLog => {
                    let (stream, type_key) = (key(keys, 0, name)?, key(keys, 1, name)?);
                    let type_name = argument(args, 0, name)?.to_vec();
                    let message = argument(args, 1, name)?.to_vec();
                    let keep = number(argument(args, 2, name)?).unwrap_or(i64::MAX).max(0);
                    if let Some(stored) = data.get_text(&type_key, wall, name)?
                        && stored != type_name
                    {
                        return Ok(pair("type", text(stored)));
                    }
                    if data.get_text(&type_key, wall, name)?.is_none() {
                        data.set_text(&type_key, type_name);
                    }
                    if data.stream(&stream, wall, name)?.is_none() {
                        data.keys.insert(
                            stream.clone(),
                            (Held::Stream { entries: BTreeMap::new(), last: (0, 0) }, None),
                        );
                    }
                    let (entries, last) = data.stream(&stream, wall, name)?.expect("just made");
                    let id = if wall > last.0 { (wall, 0) } else { (last.0, last.1 + 1) };
                    *last = id;
                    entries.insert(id, message);
                    // `MAXLEN ~`: Redis trims whole nodes of about 100 entries; the model
                    // trims once that many are over.
                    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
                    if entries.len() > keep.saturating_add(100) {
                        while entries.len() > keep {
                            entries.pop_first();
                        }
                    }
                    Ok(pair("logged", text(format!("{}-{}", id.0, id.1))))
                }
                Script::TopicSubscribe => {
                    let (stream, type_key) = (key(keys, 0, name)?, key(keys, 1, name)?);
                    let type_name = argument(args, 0, name)?.to_vec();
                    if let Some(stored) = data.get_text(&type_key, wall, name)?
                        && stored != type_name
                    {
                        return Ok(pair("type", text(stored)));
                    }
                    if data.get_text(&type_key, wall, name)?.is_none() {
                        data.set_text(&type_key, type_name);
                    }
                    let last = data
                        .stream(&stream, wall, name)?
                        .and_then(|(entries, _)| entries.keys().next_back().copied());
                    Ok(pair(
                        "from",
                        text(
                            last.map_or_else(
                                || "0-0".to_owned(),
                                |id| format!("{}-{}", id.0, id.1),
                            ),
                        ),
                    ))
                }
            }
        }
    }
}

/// `XREAD COUNT count STREAMS stream after` (without blocking).
fn read_after(
    data: &mut CoordData,
    stream: &str,
    after: &str,
    count: usize,
    wall: u64,
) -> Result<Vec<TopicMessage>, StoreError> {
    let after = super::parse_id(after).ok_or_else(|| {
        refused("XREAD", "ERR Invalid stream ID specified as stream command argument".into())
    })?;
    let Some((entries, _)) = data.stream(stream, wall, "XREAD")? else { return Ok(Vec::new()) };
    Ok(entries
        .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
        .take(count)
        .map(|(id, message)| (format!("{}-{}", id.0, id.1), Some(message.clone())))
        .collect())
}

/// Connects coordination backends to a [`Model`].
#[derive(Clone)]
pub struct ModelLinks {
    model: Arc<Model>,
}

impl ModelLinks {
    pub fn new(model: Arc<Model>) -> ModelLinks {
        ModelLinks { model }
    }
}

/// One connection to the model.
#[derive(Clone)]
struct ModelLink {
    model: Arc<Model>,
}

impl Model {
    fn bugs(&self) -> Bugs {
        #[cfg(feature = "__planted")]
        return Bugs {
            acquire_ignores_expiry: self.planted
                == Some(crate::planted::PlantedBug::RedisLeaseAcquireIgnoresExpiry),
            refresh_revives: self.planted
                == Some(crate::planted::PlantedBug::RedisLeaseRefreshRevives),
        };
        #[cfg(not(feature = "__planted"))]
        Bugs::default()
    }

    /// Runs one coordination operation as a command of the model (faults included).
    pub async fn coordination(&self, op: &Op) -> Result<Value, Error> {
        let bugs = self.bugs();
        let subscribers = &self.coord_subscribers;
        let reply = self
            .command(op.name(), |data: &mut Data, _, wall| {
                let mut publish = |channel: String| {
                    subscribers
                        .lock()
                        .retain(|subscriber| subscriber.send(channel.clone()).is_ok());
                };
                if matches!(op, Op::Script { script: Script::TopicLog, .. }) {
                    data.appends += 1;
                }
                run(&mut data.coord, op, wall, bugs, &mut publish)
            })
            .await?;
        Ok(reply?)
    }

    /// Reads a topic's messages after `after`, waiting up to `block` for one.
    async fn read_topic(
        &self,
        stream: &str,
        after: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<TopicMessage>, Error> {
        let deadline = self.now() + block;
        loop {
            let found = self
                .command("XREAD", |data: &mut Data, _, wall| {
                    read_after(&mut data.coord, stream, after, count, wall)
                })
                .await??;
            let now = self.now();
            if !found.is_empty() || now >= deadline {
                return Ok(found);
            }
            self.wait_for_append(deadline - now).await;
        }
    }
}

impl Link for ModelLink {
    fn run(&self, op: Op) -> BoxFuture<'static, Result<Value, Error>> {
        let model = Arc::clone(&self.model);
        Box::pin(async move { model.coordination(&op).await })
    }

    fn read_topic(
        &self,
        stream: String,
        after: String,
        count: usize,
        block: Duration,
    ) -> BoxFuture<'static, Result<Vec<TopicMessage>, Error>> {
        let model = Arc::clone(&self.model);
        Box::pin(async move { model.read_topic(&stream, &after, count, block).await })
    }

    fn reader(&self, _block: Duration) -> BoxFuture<'static, Result<Arc<dyn Link>, Error>> {
        let link = self.clone();
        Box::pin(async move { Ok(Arc::new(link) as Arc<dyn Link>) })
    }
}

// `wakeups` answers the wake-up loop once subscribed: the outer future is the subscription.
#[allow(clippy::async_yields_async)]
impl Connector for ModelLinks {
    fn link(&self) -> BoxFuture<'static, Result<Arc<dyn Link>, Error>> {
        let link = ModelLink { model: Arc::clone(&self.model) };
        Box::pin(async move { Ok(Arc::new(link) as Arc<dyn Link>) })
    }

    fn wakeups(
        &self,
        pattern: String,
        wake: Wake,
        stop: flume::Receiver<()>,
        _executor: Arc<dyn Executor>,
    ) -> BoxFuture<'static, BoxFuture<'static, ()>> {
        let (sender, receiver) = flume::unbounded::<String>();
        self.model.coord_subscribers.lock().push(sender);
        let prefix = pattern.trim_end_matches('*').to_owned();
        Box::pin(async move {
            Box::pin(async move {
                loop {
                    match select(receiver.recv_async(), stop.recv_async()).await {
                        Either::Left((Ok(channel), _)) => {
                            if channel.starts_with(&prefix) && !wake(&channel) {
                                return;
                            }
                        }
                        Either::Left((Err(_), _)) | Either::Right(_) => return,
                    }
                }
            }) as BoxFuture<'static, ()>
        })
    }
}
