//! The part of bencode (BEP 3) that torrents need: integers, byte strings,
//! lists and dictionaries, written canonically (dictionary keys sorted as raw
//! bytes), so the same value always encodes to the same bytes and hence the
//! same info-hash.
//!
//! Encoding only: the worker writes torrents, it never reads them.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Integer(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    /// `BTreeMap` keeps keys in byte order, which canonical bencode requires.
    Dict(BTreeMap<Vec<u8>, Value>),
}

impl Value {
    pub fn string(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    pub fn dict<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(entries.into_iter().map(|(k, v)| (k.as_bytes().to_vec(), v)).collect())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Integer(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => encode_bytes(b, out),
            Value::List(items) => {
                out.push(b'l');
                items.iter().for_each(|v| v.encode_into(out));
                out.push(b'e');
            }
            Value::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_each_type_as_bep3_specifies() {
        assert_eq!(Value::Integer(0).encode(), b"i0e");
        assert_eq!(Value::Integer(-42).encode(), b"i-42e");
        assert_eq!(Value::string("spam").encode(), b"4:spam");
        assert_eq!(Value::Bytes(vec![]).encode(), b"0:");
        assert_eq!(
            Value::List(vec![Value::string("spam"), Value::Integer(7)]).encode(),
            b"l4:spami7ee"
        );
    }

    #[test]
    fn dictionary_keys_are_sorted_as_raw_bytes() {
        let d = Value::dict([
            ("piece length", Value::Integer(1)),
            ("name", Value::string("a")),
            ("length", Value::Integer(2)),
            ("pieces", Value::Bytes(vec![0xff])),
        ]);
        assert_eq!(d.encode(), b"d6:lengthi2e4:name1:a12:piece lengthi1e6:pieces1:\xffe".to_vec());
    }
}
