//! A reader of Python pickles that builds values and never executes anything.
//!
//! The published checkpoints of image–text matching systems are `torch.save` files: a zip (or,
//! before PyTorch 1.6, a sequence of pickles) whose main pickle holds the weights *and* the
//! training options as a pickled `argparse.Namespace`. burn's PyTorch reader reads the weights but
//! not the Namespace, and some architecture choices live only there (SCAN's attention direction
//! and aggregation, CHAN's pooling, HREM's residual weight). This module reads the whole pickle
//! into a [`Value`] tree (our design):
//!
//! - `GLOBAL`/`STACK_GLOBAL` only *name* a class ([`Value::Global`]); nothing is imported or
//!   called. `REDUCE`/`NEWOBJ` of a class give a [`Value::Object`] holding the class name, the
//!   arguments and, after `BUILD`, the state; `collections.OrderedDict` gives a plain
//!   [`Value::Dict`] (its `BUILD` state, torch's `_metadata`, is dropped).
//! - Persistent ids (PyTorch's tensor storages) are kept as [`Value::Persistent`].
//! - Shared references (the memo) point into one arena, so a container memoised before its
//!   items were added is seen complete; cycles and very deep nesting are refused.
//! - Every length is checked against the remaining input before anything is allocated: a
//!   truncated or corrupt pickle is an error with its byte offset, never a panic.
//!
//! Protocols 0–5 are read, except extension codes (`EXT1/2/4`) and out-of-band buffers, which
//! no checkpoint uses.

use std::collections::HashMap;

/// A value read from a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// An integer wider than 64 bits, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A text string (Python 3 `str`; Python 2 `str` decoded as UTF-8, else Latin-1).
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A set or frozenset.
    Set(Vec<Value>),
    /// A dict (or `OrderedDict`), in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A class or function named by the pickle (never resolved).
    Global {
        /// The module, e.g. `argparse`.
        module: String,
        /// The name, e.g. `Namespace`.
        name: String,
    },
    /// An object built by calling a named class or function: `REDUCE`, `NEWOBJ`, `INST`, `OBJ`.
    Object {
        /// What was called (usually a [`Value::Global`]).
        callable: Box<Value>,
        /// Its positional arguments.
        args: Vec<Value>,
        /// The state given by `BUILD` (an `argparse.Namespace`'s attributes, as a dict).
        state: Option<Box<Value>>,
    },
    /// A persistent id (PyTorch stores a tensor storage reference here).
    Persistent(Box<Value>),
}

impl Value {
    /// The value of `key` when this is a dict with string keys.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, when this is one (booleans are not integers here).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as a float, when this is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, when this is one (Python 2 pickles may store `0`/`1` integers instead).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }

    /// `module.name` of the class or function that built this object, or of this global.
    pub fn class_name(&self) -> Option<String> {
        match self {
            Value::Global { module, name } => Some(format!("{module}.{name}")),
            Value::Object { callable, .. } => callable.class_name(),
            _ => None,
        }
    }

    /// The attributes of an `argparse.Namespace` (its `BUILD` state), or `None` when this is
    /// not one.
    pub fn namespace(&self) -> Option<&Value> {
        match self {
            Value::Object {
                state: Some(state), ..
            } if self.class_name().as_deref() == Some("argparse.Namespace") => Some(state),
            _ => None,
        }
    }

    /// A short description of the kind of value, for error messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a boolean".into(),
            Value::Int(_) | Value::BigInt(_) => "an integer".into(),
            Value::Float(_) => "a float".into(),
            Value::Str(_) => "a string".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::List(_) => "a list".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::Set(_) => "a set".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Global { .. } | Value::Object { .. } => match self.class_name() {
                Some(name) => format!("a {name}"),
                None => "an object".into(),
            },
            Value::Persistent(_) => "a persistent reference".into(),
        }
    }
}

/// Why a pickle could not be read: the byte offset of the opcode and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pickle byte {offset}: {message}")]
pub struct PickleError {
    /// Offset of the opcode (or of the end of the input) in the pickle.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// Deepest nesting of containers accepted (also what stops a cyclic structure).
const MAX_DEPTH: usize = 512;

/// Reads one pickle from the start of `bytes`: the value and the number of bytes it took (up to
/// and including `STOP`).
pub fn read(bytes: &[u8]) -> Result<(Value, usize), PickleError> {
    let mut machine = Machine {
        input: bytes,
        pos: 0,
        arena: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let top = machine.run()?;
    let budget = std::cell::Cell::new(bytes.len().saturating_mul(64).saturating_add(4096));
    let value = machine.resolve(top, 0, &budget)?;
    Ok((value, machine.pos))
}

/// Reads `count` pickles stored one after another (PyTorch's legacy format stores a magic
/// number, the protocol, system information and then the object as consecutive pickles).
pub fn read_sequence(bytes: &[u8], count: usize) -> Result<Vec<Value>, PickleError> {
    let mut values = Vec::with_capacity(count.min(16));
    let mut offset = 0;
    for _ in 0..count {
        let (value, used) = read(&bytes[offset..]).map_err(|e| PickleError {
            offset: offset + e.offset,
            message: e.message,
        })?;
        values.push(value);
        offset += used;
    }
    Ok(values)
}

/// A node of the arena: containers hold arena indices, so that a memoised container that is
/// filled later is seen filled wherever it is referenced.
#[derive(Debug)]
enum Node {
    Leaf(Value),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Set(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Object {
        callable: usize,
        args: Vec<usize>,
        state: Option<usize>,
    },
    Persistent(usize),
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    arena: Vec<Node>,
    stack: Vec<usize>,
    /// Stack heights at each `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u64, usize>,
}

impl Machine<'_> {
    fn error(&self, offset: usize, message: impl Into<String>) -> PickleError {
        PickleError {
            offset,
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize, at: usize) -> Result<&[u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len())
            .ok_or_else(|| {
                self.error(
                    at,
                    format!(
                        "truncated: {n} bytes needed, {} left",
                        self.input.len() - self.pos
                    ),
                )
            })?;
        let slice = &self.input[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn take_array<const N: usize>(&mut self, at: usize) -> Result<[u8; N], PickleError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N, at)?);
        Ok(array)
    }

    fn line(&mut self, at: usize) -> Result<String, PickleError> {
        let rest = &self.input[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.error(at, "truncated: a text argument has no end of line"))?;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(text)
    }

    fn length(&mut self, width: usize, at: usize) -> Result<usize, PickleError> {
        let bytes = self.take(width, at)?;
        let mut value: u64 = 0;
        for (i, &b) in bytes.iter().enumerate() {
            value |= u64::from(b) << (8 * i);
        }
        usize::try_from(value).map_err(|_| self.error(at, "a length does not fit in memory"))
    }

    fn alloc(&mut self, node: Node) -> usize {
        self.arena.push(node);
        self.arena.len() - 1
    }

    fn push(&mut self, node: Node) {
        let id = self.alloc(node);
        self.stack.push(id);
    }

    fn push_leaf(&mut self, value: Value) {
        self.push(Node::Leaf(value));
    }

    fn pop(&mut self, at: usize) -> Result<usize, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(self.error(at, "an opcode pops past a MARK"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.error(at, "an opcode pops from an empty stack"))
    }

    fn top(&self, at: usize) -> Result<usize, PickleError> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.error(at, "an opcode needs a value but the stack is empty"))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<usize>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.error(at, "an opcode needs a MARK and there is none"))?;
        Ok(self.stack.split_off(mark))
    }

    fn text(&self, bytes: &[u8], at: usize) -> Result<String, PickleError> {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.error(at, "a text string is not valid UTF-8"))
    }

    fn int_from_le(&self, bytes: &[u8]) -> Value {
        if bytes.is_empty() {
            return Value::Int(0);
        }
        if bytes.len() <= 8 {
            let negative = bytes[bytes.len() - 1] & 0x80 != 0;
            let mut full = [if negative { 0xff } else { 0 }; 8];
            full[..bytes.len()].copy_from_slice(bytes);
            return Value::Int(i64::from_le_bytes(full));
        }
        Value::BigInt(bytes.to_vec())
    }

    fn memo_put(&mut self, key: u64, at: usize) -> Result<(), PickleError> {
        let id = self.top(at)?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64, at: usize) -> Result<(), PickleError> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| self.error(at, format!("memo entry {key} is read before it is set")))?;
        self.stack.push(id);
        Ok(())
    }

    fn is_ordered_dict(&self, id: usize) -> bool {
        matches!(&self.arena[id], Node::Leaf(Value::Global { module, name })
            if (module == "collections" && name == "OrderedDict")
                || (module == "builtins" || module == "__builtin__") && name == "dict")
    }

    /// A call `callable(*args)`: an `OrderedDict()` becomes a dict, anything else an object.
    fn call(&mut self, callable: usize, args: Vec<usize>) {
        if self.is_ordered_dict(callable) && args.is_empty() {
            self.push(Node::Dict(Vec::new()));
        } else {
            self.push(Node::Object {
                callable,
                args,
                state: None,
            });
        }
    }

    fn tuple_items(&self, id: usize, at: usize) -> Result<Vec<usize>, PickleError> {
        match &self.arena[id] {
            Node::Tuple(items) => Ok(items.clone()),
            Node::Leaf(Value::None) => Ok(Vec::new()),
            _ => Err(self.error(at, "the arguments of a call are not a tuple")),
        }
    }

    fn set_items(
        &mut self,
        target: usize,
        items: Vec<usize>,
        at: usize,
    ) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.error(at, "SETITEMS with an odd number of values"));
        }
        match &mut self.arena[target] {
            Node::Dict(entries) => {
                entries.extend(items.chunks(2).map(|pair| (pair[0], pair[1])));
                Ok(())
            }
            _ => Err(self.error(at, "items are set on something that is not a dict")),
        }
    }

    fn append(&mut self, target: usize, items: Vec<usize>, at: usize) -> Result<(), PickleError> {
        match &mut self.arena[target] {
            Node::List(list) | Node::Set(list) => {
                list.extend(items);
                Ok(())
            }
            _ => Err(self.error(at, "items are appended to something that is not a list")),
        }
    }

    fn run(&mut self) -> Result<usize, PickleError> {
        loop {
            let at = self.pos;
            let [op] = self.take_array::<1>(at)?;
            match op {
                // PROTO, FRAME: only framing information.
                0x80 => {
                    let [protocol] = self.take_array::<1>(at)?;
                    if protocol > 5 {
                        return Err(self.error(at, format!("unknown pickle protocol {protocol}")));
                    }
                }
                0x95 => {
                    self.take(8, at)?;
                }
                b'.' => return self.pop(at),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop(at)?;
                }
                b'1' => {
                    self.pop_mark(at)?;
                }
                b'2' => {
                    let id = self.top(at)?;
                    self.stack.push(id);
                }
                b'N' => self.push_leaf(Value::None),
                0x88 => self.push_leaf(Value::Bool(true)),
                0x89 => self.push_leaf(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.take_array(at)?);
                    self.push_leaf(Value::Int(v.into()));
                }
                b'K' => {
                    let [v] = self.take_array::<1>(at)?;
                    self.push_leaf(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take_array(at)?);
                    self.push_leaf(Value::Int(v.into()));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.length(1, at)?
                    } else {
                        let n = i32::from_le_bytes(self.take_array(at)?);
                        usize::try_from(n)
                            .map_err(|_| self.error(at, "a negative integer length"))?
                    };
                    let bytes = self.take(n, at)?.to_vec();
                    let value = self.int_from_le(&bytes);
                    self.push_leaf(value);
                }
                b'I' | b'L' => {
                    let line = self.line(at)?;
                    let digits = line.trim_end_matches('L');
                    let value = match digits {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(digits.parse().map_err(|_| {
                            self.error(at, format!("{digits:?} is not an integer"))
                        })?),
                    };
                    self.push_leaf(value);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take_array(at)?);
                    self.push_leaf(Value::Float(v));
                }
                b'F' => {
                    let line = self.line(at)?;
                    let v = line
                        .trim()
                        .parse()
                        .map_err(|_| self.error(at, format!("{line:?} is not a float")))?;
                    self.push_leaf(Value::Float(v));
                }
                // Text: BINUNICODE, SHORT_BINUNICODE, BINUNICODE8.
                b'X' | 0x8c | 0x8d => {
                    let width = match op {
                        0x8c => 1,
                        b'X' => 4,
                        _ => 8,
                    };
                    let n = self.length(width, at)?;
                    let bytes = self.take(n, at)?.to_vec();
                    let text = self.text(&bytes, at)?;
                    self.push_leaf(Value::Str(text));
                }
                // Python 2 strings: BINSTRING, SHORT_BINSTRING.
                b'T' | b'U' => {
                    let n = if op == b'U' {
                        self.length(1, at)?
                    } else {
                        let n = i32::from_le_bytes(self.take_array(at)?);
                        usize::try_from(n)
                            .map_err(|_| self.error(at, "a negative string length"))?
                    };
                    let bytes = self.take(n, at)?.to_vec();
                    self.push_leaf(Value::Str(python2_text(&bytes)));
                }
                b'S' => {
                    let line = self.line(at)?;
                    let inner = line
                        .strip_prefix('\'')
                        .and_then(|l| l.strip_suffix('\''))
                        .or_else(|| line.strip_prefix('"').and_then(|l| l.strip_suffix('"')))
                        .ok_or_else(|| self.error(at, "a STRING argument is not quoted"))?;
                    self.push_leaf(Value::Str(unescape(inner)));
                }
                b'V' => {
                    let line = self.line(at)?;
                    self.push_leaf(Value::Str(unescape(&line)));
                }
                // Bytes: BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8.
                b'B' | b'C' | 0x8e | 0x96 => {
                    let width = match op {
                        b'C' => 1,
                        b'B' => 4,
                        _ => 8,
                    };
                    let n = self.length(width, at)?;
                    let bytes = self.take(n, at)?.to_vec();
                    self.push_leaf(Value::Bytes(bytes));
                }
                b']' => self.push(Node::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::List(items));
                }
                b'a' => {
                    let item = self.pop(at)?;
                    let list = self.top(at)?;
                    self.append(list, vec![item], at)?;
                }
                b'e' => {
                    let items = self.pop_mark(at)?;
                    let list = self.top(at)?;
                    self.append(list, items, at)?;
                }
                b')' => self.push(Node::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop(at)?);
                    }
                    items.reverse();
                    self.push(Node::Tuple(items));
                }
                b'}' => self.push(Node::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark(at)?;
                    let id = self.alloc(Node::Dict(Vec::new()));
                    self.set_items(id, items, at)?;
                    self.stack.push(id);
                }
                b's' => {
                    let value = self.pop(at)?;
                    let key = self.pop(at)?;
                    let dict = self.top(at)?;
                    self.set_items(dict, vec![key, value], at)?;
                }
                b'u' => {
                    let items = self.pop_mark(at)?;
                    let dict = self.top(at)?;
                    self.set_items(dict, items, at)?;
                }
                0x8f => self.push(Node::Set(Vec::new())),
                0x90 => {
                    let items = self.pop_mark(at)?;
                    let set = self.top(at)?;
                    self.append(set, items, at)?;
                }
                0x91 => {
                    let items = self.pop_mark(at)?;
                    self.push(Node::Set(items));
                }
                b'c' => {
                    let module = self.line(at)?;
                    let name = self.line(at)?;
                    self.push_leaf(Value::Global { module, name });
                }
                0x93 => {
                    let name = self.pop(at)?;
                    let module = self.pop(at)?;
                    match (&self.arena[module], &self.arena[name]) {
                        (Node::Leaf(Value::Str(m)), Node::Leaf(Value::Str(n))) => {
                            let (module, name) = (m.clone(), n.clone());
                            self.push_leaf(Value::Global { module, name });
                        }
                        _ => return Err(self.error(at, "STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let args = self.tuple_items(args, at)?;
                    self.call(callable, args);
                }
                0x92 => {
                    let _kwargs = self.pop(at)?;
                    let args = self.pop(at)?;
                    let callable = self.pop(at)?;
                    let args = self.tuple_items(args, at)?;
                    self.call(callable, args);
                }
                b'i' => {
                    let module = self.line(at)?;
                    let name = self.line(at)?;
                    let args = self.pop_mark(at)?;
                    let callable = self.alloc(Node::Leaf(Value::Global { module, name }));
                    self.call(callable, args);
                }
                b'o' => {
                    let mut items = self.pop_mark(at)?;
                    if items.is_empty() {
                        return Err(self.error(at, "OBJ without a class"));
                    }
                    let callable = items.remove(0);
                    self.call(callable, items);
                }
                b'b' => {
                    let state = self.pop(at)?;
                    let target = self.top(at)?;
                    match &mut self.arena[target] {
                        Node::Object { state: slot, .. } => *slot = Some(state),
                        // An OrderedDict's attributes (torch's `_metadata`): not needed.
                        Node::Dict(_) => {}
                        _ => return Err(self.error(at, "BUILD on something that is not an object")),
                    }
                }
                b'P' => {
                    let line = self.line(at)?;
                    let id = self.alloc(Node::Leaf(Value::Str(line)));
                    self.push(Node::Persistent(id));
                }
                b'Q' => {
                    let id = self.pop(at)?;
                    self.push(Node::Persistent(id));
                }
                b'p' => {
                    let line = self.line(at)?;
                    let key = line
                        .parse()
                        .map_err(|_| self.error(at, format!("{line:?} is not a memo key")))?;
                    self.memo_put(key, at)?;
                }
                b'q' => {
                    let [key] = self.take_array::<1>(at)?;
                    self.memo_put(key.into(), at)?;
                }
                b'r' => {
                    let key = u32::from_le_bytes(self.take_array(at)?);
                    self.memo_put(key.into(), at)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key, at)?;
                }
                b'g' => {
                    let line = self.line(at)?;
                    let key = line
                        .parse()
                        .map_err(|_| self.error(at, format!("{line:?} is not a memo key")))?;
                    self.memo_get(key, at)?;
                }
                b'h' => {
                    let [key] = self.take_array::<1>(at)?;
                    self.memo_get(key.into(), at)?;
                }
                b'j' => {
                    let key = u32::from_le_bytes(self.take_array(at)?);
                    self.memo_get(key.into(), at)?;
                }
                other => {
                    return Err(self.error(
                        at,
                        format!("opcode 0x{other:02x} is not supported (or this is not a pickle)"),
                    ));
                }
            }
        }
    }

    /// The value of arena node `id`. Shared nodes are copied where they are referenced; the
    /// `budget` of nodes (64 per input byte) stops a pickle whose references multiply.
    fn resolve(
        &self,
        id: usize,
        depth: usize,
        budget: &std::cell::Cell<usize>,
    ) -> Result<Value, PickleError> {
        if budget.get() == 0 {
            return Err(self.error(self.pos, "the pickle's shared references expand too far"));
        }
        budget.set(budget.get() - 1);
        if depth > MAX_DEPTH {
            return Err(self.error(
                self.pos,
                format!("values nested more than {MAX_DEPTH} deep (or cyclic)"),
            ));
        }
        let all = |ids: &[usize]| -> Result<Vec<Value>, PickleError> {
            ids.iter()
                .map(|&i| self.resolve(i, depth + 1, budget))
                .collect()
        };
        Ok(match &self.arena[id] {
            Node::Leaf(value) => value.clone(),
            Node::List(items) => Value::List(all(items)?),
            Node::Tuple(items) => Value::Tuple(all(items)?),
            Node::Set(items) => Value::Set(all(items)?),
            Node::Dict(entries) => Value::Dict(
                entries
                    .iter()
                    .map(|&(k, v)| {
                        Ok((
                            self.resolve(k, depth + 1, budget)?,
                            self.resolve(v, depth + 1, budget)?,
                        ))
                    })
                    .collect::<Result<_, PickleError>>()?,
            ),
            Node::Object {
                callable,
                args,
                state,
            } => Value::Object {
                callable: Box::new(self.resolve(*callable, depth + 1, budget)?),
                args: all(args)?,
                state: match state {
                    Some(s) => Some(Box::new(self.resolve(*s, depth + 1, budget)?)),
                    None => None,
                },
            },
            Node::Persistent(inner) => {
                Value::Persistent(Box::new(self.resolve(*inner, depth + 1, budget)?))
            }
        })
    }
}

/// A Python 2 `str`: UTF-8 when it is valid, else Latin-1 (what `torch.load(encoding='latin1')`
/// does).
fn python2_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The backslash escapes of protocol 0 text (`\\`, `\n`, `\t`, `\'`, `\xNN`, `\uNNNN`).
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(q @ ('\\' | '\'' | '"')) => out.push(q),
            Some(kind @ ('x' | 'u' | 'U')) => {
                let width = match kind {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let digits: String = chars.by_ref().take(width).collect();
                match u32::from_str_radix(&digits, 16)
                    .ok()
                    .and_then(char::from_u32)
                {
                    Some(decoded) => out.push(decoded),
                    None => {
                        out.push('\\');
                        out.push(kind);
                        out.push_str(&digits);
                    }
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps(argparse.Namespace(a=1, b='x', c=[0.5, True]), protocol=2)`, assembled by
    /// hand from the protocol's opcodes.
    fn namespace_protocol_2() -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend(b"cargparse\nNamespace\nq\x00)\x81q\x01}q\x02(");
        p.extend(b"X\x01\x00\x00\x00aq\x03K\x01");
        p.extend(b"X\x01\x00\x00\x00bq\x04X\x01\x00\x00\x00xq\x05");
        p.extend(b"X\x01\x00\x00\x00cq\x06]q\x07(G?\xe0\x00\x00\x00\x00\x00\x00\x88e");
        p.extend(b"ub.");
        p
    }

    #[test]
    fn reads_an_argparse_namespace_without_running_it() {
        let bytes = namespace_protocol_2();
        let (value, used) = read(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(value.class_name().as_deref(), Some("argparse.Namespace"));
        let opt = value.namespace().unwrap();
        assert_eq!(opt.get("a").and_then(Value::as_i64), Some(1));
        assert_eq!(opt.get("b").and_then(Value::as_str), Some("x"));
        assert_eq!(
            opt.get("c"),
            Some(&Value::List(vec![Value::Float(0.5), Value::Bool(true)]))
        );
    }

    #[test]
    fn a_memoised_dict_is_seen_with_the_items_added_after_it() {
        // d = {}; [d, d] with d filled after being memoised (protocol 2).
        let bytes = b"\x80\x02]q\x00(}q\x01X\x01\x00\x00\x00kK\x07sh\x01e.";
        let (value, _) = read(bytes).unwrap();
        let dict = Value::Dict(vec![(Value::Str("k".into()), Value::Int(7))]);
        assert_eq!(value, Value::List(vec![dict.clone(), dict]));
    }

    #[test]
    fn ordered_dicts_are_dicts_and_their_metadata_is_dropped() {
        let bytes = b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00wK\x02u}b.";
        let (value, _) = read(bytes).unwrap();
        assert_eq!(
            value,
            Value::Dict(vec![(Value::Str("w".into()), Value::Int(2))])
        );
    }

    #[test]
    fn integers_of_every_width_and_python_2_strings() {
        // LONG1 of -2, BININT of -70000, BININT2, SHORT_BINSTRING in Latin-1, as a tuple.
        let mut bytes = vec![0x80, 2, b'('];
        bytes.extend([0x8a, 1, 0xfe]);
        bytes.push(b'J');
        bytes.extend((-70000i32).to_le_bytes());
        bytes.extend([b'M', 0x34, 0x12]);
        bytes.extend([b'U', 2, b'c', 0xe9]);
        bytes.extend(b"t.");
        let (value, _) = read(&bytes).unwrap();
        assert_eq!(
            value,
            Value::Tuple(vec![
                Value::Int(-2),
                Value::Int(-70000),
                Value::Int(0x1234),
                Value::Str("cé".into()),
            ])
        );
    }

    #[test]
    fn protocol_0_text_opcodes() {
        let bytes = b"(dp0\nS'name'\np1\nVcaf\\u00e9\np2\nsS'n'\nI12\nsS'f'\nF0.25\nsS't'\nI01\ns.";
        let (value, _) = read(bytes).unwrap();
        assert_eq!(value.get("name").and_then(Value::as_str), Some("café"));
        assert_eq!(value.get("n").and_then(Value::as_i64), Some(12));
        assert_eq!(value.get("f").and_then(Value::as_f64), Some(0.25));
        assert_eq!(value.get("t").and_then(Value::as_bool), Some(true));
    }

    #[test]
    fn persistent_ids_are_kept() {
        let bytes = b"\x80\x02X\x07\x00\x00\x00storage\x85Q.";
        let (value, _) = read(bytes).unwrap();
        assert_eq!(
            value,
            Value::Persistent(Box::new(Value::Tuple(vec![Value::Str("storage".into())])))
        );
    }

    #[test]
    fn consecutive_pickles() {
        let bytes = b"\x80\x02K\x01.\x80\x02K\x02.";
        assert_eq!(
            read_sequence(bytes, 2).unwrap(),
            vec![Value::Int(1), Value::Int(2)]
        );
        let err = read_sequence(bytes, 3).unwrap_err();
        assert_eq!(err.offset, bytes.len());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = namespace_protocol_2();
        for end in 0..bytes.len() {
            let err = read(&bytes[..end]).unwrap_err();
            assert!(err.offset <= end, "{end}: {err}");
        }
    }

    #[test]
    fn corrupt_input_never_panics() {
        // Every single-byte corruption of a valid pickle, and a stream of pseudo-random bytes:
        // an error or a value, never a panic (a small fuzz in the test suite).
        let bytes = namespace_protocol_2();
        for i in 0..bytes.len() {
            for b in [0x00u8, 0x28, 0x2e, 0x71, 0x68, 0x81, 0x8c, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[i] = b;
                let _ = read(&corrupt);
            }
        }
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let noise: Vec<u8> = (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            let _ = read(&noise);
        }
    }

    #[test]
    fn cycles_and_undefined_memo_entries_are_refused() {
        // l = []; l.append(l)
        let cyclic = b"\x80\x02]q\x00h\x00a.";
        assert!(read(cyclic).unwrap_err().message.contains("nested"));
        let undefined = b"\x80\x02h\x05.";
        assert!(
            read(undefined)
                .unwrap_err()
                .message
                .contains("memo entry 5")
        );
        // Each list holds the previous one twice: 2^40 copies if expanded.
        let mut laughs = vec![0x80, 2, b']', b'q', 0];
        for i in 1..=40u8 {
            laughs.extend([b']', b'q', i, b'(', b'h', i - 1, b'h', i - 1, b'e']);
        }
        laughs.push(b'.');
        assert!(read(&laughs).unwrap_err().message.contains("expand"));
        let huge = b"\x80\x02X\xff\xff\xff\xff";
        assert!(read(huge).unwrap_err().message.contains("truncated"));
    }
}
