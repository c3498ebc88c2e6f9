use super::*;
use crate::models::checkpoint::TorchDtype;

fn read(bytes: &[u8]) -> Result<Unpickled, PickleError> {
    unpickle(bytes).map(|(u, _)| u)
}

#[test]
fn a_global_off_the_allow_list_is_refused_by_name_before_it_is_called() {
    // what `pickle.dumps` writes for a __reduce__ to os.system (Python pickles it as posix.system)
    let evil = b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03.";
    let err = read(evil).err().unwrap();
    assert_eq!(
        err,
        PickleError::Refused {
            module: "posix".into(),
            name: "system".into()
        }
    );
    assert!(err.to_string().contains("`posix.system`"), "{err}");
    // STACK_GLOBAL (protocol 4) too
    let evil4 = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93).";
    let err = read(evil4).err().unwrap();
    assert!(err.to_string().contains("`builtins.eval`"), "{err}");
}

#[test]
fn memoised_containers_are_shared_like_python_objects() {
    // d = {}; d["a"] = 1; (d, d) — the second is fetched from the memo after d was filled
    let p = b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01sh\x00\x86.";
    let u = read(p).unwrap();
    let Value::Tuple(items) = &u.root else {
        panic!("{:?}", u.root)
    };
    let (Value::Dict(a), Value::Dict(b)) = (&items[0], &items[1]) else {
        panic!("{items:?}")
    };
    assert_eq!(a, b);
    assert_eq!(u.arena.dict(*a), &[(Value::Str("a".into()), Value::Int(1))]);
}

#[test]
fn integers_floats_and_wide_longs() {
    // (-2, 300, 2.5, 2**80)
    let p = b"\x80\x02(J\xfe\xff\xff\xffM,\x01G@\x04\x00\x00\x00\x00\x00\x00\x8a\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01t.";
    let u = read(p).unwrap();
    assert_eq!(
        u.root,
        Value::Tuple(
            vec![
                Value::Int(-2),
                Value::Int(300),
                Value::Float(2.5),
                Value::BigInt(vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1].into()),
            ]
            .into()
        )
    );
    assert_eq!(long(vec![0xff]), Value::Int(-1));
    assert_eq!(long(vec![0x00, 0x01]), Value::Int(256));
}

#[test]
fn a_truncated_pickle_is_damaged_not_a_panic() {
    let p = b"\x80\x02}q\x00X\x10\x00\x00\x00abc";
    let err = read(p).err().unwrap();
    assert!(matches!(err, PickleError::Damaged { .. }), "{err}");
    let err = read(b"\x80\x02\xff").err().unwrap();
    assert!(err.to_string().contains("opcode 0xff"), "{err}");
    assert!(read(b"\x80\x02t.").is_err(), "TUPLE without a MARK");
}

#[test]
fn a_tensor_is_rebuilt_from_its_storage_reference() {
    // _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 6), 2, (2, 2), (2, 1), False, OrderedDict())
    let mut p = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
    p.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQ");
    p.extend_from_slice(b"K\x02K\x02K\x02\x86K\x02K\x01\x86\x89ccollections\nOrderedDict\n)RtR.");
    let u = read(&p).unwrap();
    assert_eq!(
        u.root,
        Value::Tensor(Rc::new(TensorRef {
            storage: StorageRef {
                dtype: TorchDtype::Float,
                key: "0".into(),
                numel: 6,
                view: None
            },
            offset: 2,
            shape: vec![2, 2],
            stride: vec![2, 1],
        }))
    );
}

#[test]
fn copying_a_large_value_many_times_costs_nothing() {
    // a 1 MiB string, then DUP 200 000 times: with values copied, 200 GiB
    let mut p = b"\x80\x02X\x00\x00\x10\x00".to_vec();
    p.extend(std::iter::repeat_n(b'a', 1 << 20));
    p.extend(std::iter::repeat_n(b'2', 200_000));
    p.push(b'.');
    let u = read(&p).unwrap();
    assert!(matches!(&u.root, Value::Str(s) if s.len() == 1 << 20));
}

#[test]
fn an_ordered_dict_of_a_list_is_not_taken() {
    // OrderedDict([]): not what torch writes, and a copy per call if it were taken
    let p = b"\x80\x02ccollections\nOrderedDict\n]\x85R.";
    let err = read(p).err().unwrap();
    assert!(
        err.to_string().contains("a call of a class or function"),
        "{err}"
    );
}
