"""Modbus register maps: codecs, address bases, read planning, profiles."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from amr.core.domain import Channel
from amr.errors import ProtocolError
from amr.protocols.modbus_map import (
    PROFILES,
    Order,
    ReadBlock,
    RegisterMap,
    RegisterSpec,
    RegisterType,
    decode,
    encode,
    plan_reads,
    profile,
    register_count,
)

BIG, LITTLE = Order.BIG, Order.LITTLE


def spec(
    value_type: RegisterType,
    *,
    address: int = 0,
    unit: str = "Wh",
    word: Order = BIG,
    byte: Order = BIG,
    scale: str = "1",
    decimals: int | None = None,
    function: int = 3,
    base: int = 0,
) -> RegisterSpec:
    return RegisterSpec(
        function,
        address,
        value_type,
        unit,
        base=base,
        word_order=word,
        byte_order=byte,
        scale=Decimal(scale),
        decimals=decimals,
    )


def test_register_count() -> None:
    assert register_count(RegisterType.UINT16) == 1
    assert register_count("int16") == 1
    assert register_count("uint32") == 2
    assert register_count("int32") == 2
    assert register_count("float32") == 2
    assert register_count("uint64") == 4
    assert register_count("int64") == 4
    assert register_count("float64") == 4


# --- decoding known byte patterns ---------------------------------------------------

# 32-bit value 0x01020304 = 16909060 in the four orders.
ORDERS_32 = [
    (BIG, BIG, [0x0102, 0x0304]),  # ABCD
    (LITTLE, BIG, [0x0304, 0x0102]),  # CDAB (low word first: Carlo Gavazzi)
    (BIG, LITTLE, [0x0201, 0x0403]),  # BADC
    (LITTLE, LITTLE, [0x0403, 0x0201]),  # DCBA
]


@pytest.mark.parametrize(("word", "byte", "registers"), ORDERS_32)
def test_uint32_orders(word: Order, byte: Order, registers: list[int]) -> None:
    s = spec(RegisterType.UINT32, word=word, byte=byte)
    assert decode(s, registers) == 0x01020304
    assert encode(s, 0x01020304) == registers


@pytest.mark.parametrize(
    ("value_type", "registers", "value"),
    [
        (RegisterType.UINT16, [0x1234], 0x1234),
        (RegisterType.UINT16, [0xFFFF], 65535),
        (RegisterType.INT16, [0xFFFF], -1),
        (RegisterType.INT16, [0x8000], -32768),
        (RegisterType.UINT32, [0xFFFF, 0xFFFE], 0xFFFFFFFE),
        (RegisterType.INT32, [0xFFFF, 0xFFFE], -2),
        (RegisterType.INT32, [0x7FFF, 0xFFFF], 2**31 - 1),
        (RegisterType.UINT64, [0x0000, 0x0000, 0x0001, 0x0000], 65536),
        (RegisterType.UINT64, [0xFFFF] * 4, 2**64 - 1),
        (RegisterType.INT64, [0xFFFF] * 4, -1),
        (RegisterType.INT64, [0x0000, 0x0001, 0x0000, 0x0000], 2**32),
    ],
)
def test_integer_patterns(value_type: RegisterType, registers: list[int], value: int) -> None:
    s = spec(value_type)
    assert decode(s, registers) == value
    assert encode(s, value) == registers


def test_int64_low_word_first() -> None:
    s = spec(RegisterType.INT64, word=LITTLE)
    assert decode(s, [0x0000, 0x0000, 0x0001, 0x0000]) == 2**32


@pytest.mark.parametrize(
    ("value_type", "word", "registers", "kwh"),
    [
        # IEEE 754: 1.5 = 0x3FC00000, 1234.5 = 0x449A5000, 1.0 (double) = 0x3FF0...
        (RegisterType.FLOAT32, BIG, [0x3FC0, 0x0000], "1.5"),
        (RegisterType.FLOAT32, LITTLE, [0x0000, 0x3FC0], "1.5"),
        (RegisterType.FLOAT32, BIG, [0x449A, 0x5000], "1234.5"),
        (RegisterType.FLOAT64, BIG, [0x3FF0, 0x0000, 0x0000, 0x0000], "1"),
        (RegisterType.FLOAT64, LITTLE, [0x0000, 0x0000, 0x0000, 0x3FF0], "1"),
    ],
)
def test_float_patterns(value_type: RegisterType, word: Order, registers: list[int], kwh: str) -> None:
    s = spec(value_type, word=word, unit="kWh", decimals=3)
    assert decode(s, registers) == int(Decimal(kwh) * 1000)
    assert encode(s, int(Decimal(kwh) * 1000)) == registers


def test_float_rounded_to_declared_decimals() -> None:
    # 1234.567 is not a float32: the nearest one is 1234.5670166015625.
    registers = list(struct.unpack(">HH", struct.pack(">f", 1234.567)))
    assert decode(spec(RegisterType.FLOAT32, unit="kWh", decimals=3), registers) == 1_234_567
    assert decode(spec(RegisterType.FLOAT32, unit="kWh", decimals=2), registers) == 1_234_570
    assert decode(spec(RegisterType.FLOAT32, unit="kWh", decimals=0), registers) == 1_235_000


@pytest.mark.parametrize("pattern", [[0x7FC0, 0x0000], [0x7F80, 0x0000], [0xFF80, 0x0000]])
def test_float_nan_and_infinity(pattern: list[int]) -> None:
    with pytest.raises(ProtocolError, match="not an energy"):
        decode(spec(RegisterType.FLOAT32, decimals=2), pattern)


def test_scale_and_unit() -> None:
    # Carlo Gavazzi style: INT32 low word first, weight 0.1 kWh. 12345 → 1234.5 kWh.
    s = spec(RegisterType.INT32, unit="kWh", word=LITTLE, scale="0.1")
    assert decode(s, [0x3039, 0x0000]) == 1_234_500
    assert decode(spec(RegisterType.UINT16, unit="MWh", scale="0.01"), [5]) == 50_000
    assert decode(spec(RegisterType.UINT32, unit="kvarh", scale="0.001"), [0, 1234]) == 1234


def test_finer_than_wh_rounds_half_even() -> None:
    s = spec(RegisterType.UINT16, unit="kWh", scale="0.0001")  # 0.1 Wh steps
    assert decode(s, [15]) == 2  # 1.5 Wh
    assert decode(s, [25]) == 2  # 2.5 Wh
    assert decode(s, [26]) == 3


def test_decode_checks_registers() -> None:
    with pytest.raises(ProtocolError, match="spans 2 registers; got 1"):
        decode(spec(RegisterType.UINT32), [1])
    with pytest.raises(ProtocolError, match=r"0\.\.65535"):
        decode(spec(RegisterType.UINT16), [70000])


# --- encoding (simulators) -------------------------------------------------------


@pytest.mark.parametrize(
    "s",
    [
        spec(RegisterType.UINT32, unit="kWh", scale="0.001"),
        spec(RegisterType.INT32, unit="kWh", word=LITTLE, scale="0.001"),
        spec(RegisterType.UINT64, unit="Wh", byte=LITTLE),
        spec(RegisterType.INT64, unit="varh", word=LITTLE, byte=LITTLE),
        spec(RegisterType.FLOAT64, unit="kWh", decimals=3),
        spec(RegisterType.FLOAT32, unit="kvarh", decimals=2),
    ],
)
@pytest.mark.parametrize("wh", [0, 10, 1_234_560, 99_999_990])
def test_round_trip(s: RegisterSpec, wh: int) -> None:
    assert decode(s, encode(s, wh)) == wh


def test_encode_cuts_below_resolution() -> None:
    s = spec(RegisterType.INT32, unit="kWh", word=LITTLE, scale="0.1")
    assert encode(s, 1_234_567) == [12345, 0]  # a register shows completed 0.1 kWh
    assert decode(s, encode(s, 1_234_567)) == 1_234_500


def test_encode_out_of_range() -> None:
    with pytest.raises(ValueError, match="outside uint16"):
        encode(spec(RegisterType.UINT16), 65536)
    with pytest.raises(ValueError, match="outside uint16"):
        encode(spec(RegisterType.UINT16), -1)
    with pytest.raises(ValueError, match="does not fit float32"):
        encode(spec(RegisterType.FLOAT32, decimals=0), 10**40)


# --- spec validation and address base --------------------------------------------


def test_one_based_register_number_to_protocol_address() -> None:
    # Schneider lists "register 3204"; the request carries address 3203 (0x0C83).
    one_based = spec(RegisterType.INT64, address=3204, base=1)
    zero_based = spec(RegisterType.INT64, address=0x0C83, base=0)
    assert one_based.protocol_address == zero_based.protocol_address == 0x0C83
    assert one_based.end == 0x0C87
    assert plan_reads([one_based]) == [ReadBlock(3, 0x0C83, 4, (one_based,))]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"function": 6}, "function code"),
        ({"base": 2}, "base is 0"),
        ({"base": 1, "address": 0}, "1-based address cannot be 0"),
        ({"address": 65535}, "past 65535"),  # a uint32 would run past the last register
        ({"scale": "0"}, "positive Decimal"),
        ({"unit": "kW"}, "unknown energy unit"),
        ({"decimals": 2}, "float types only"),  # integer type
    ],
)
def test_bad_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spec(RegisterType.UINT32, **kwargs)  # type: ignore[arg-type]


def test_float_needs_decimals() -> None:
    with pytest.raises(ValueError, match="needs decimals"):
        spec(RegisterType.FLOAT32)
    with pytest.raises(ValueError, match="needs decimals"):
        spec(RegisterType.FLOAT32, decimals=10)


def test_float_scale_refused() -> None:
    with pytest.raises(ValueError, match="Decimal"):
        RegisterSpec(3, 0, RegisterType.UINT16, "kWh", scale=0.1)  # type: ignore[arg-type]


def test_string_enums_accepted() -> None:
    s = RegisterSpec(4, 0x48, "float32", "kWh", word_order="little", decimals=2)  # type: ignore[arg-type]
    assert s.value_type is RegisterType.FLOAT32
    assert s.word_order is Order.LITTLE


# --- read planning -------------------------------------------------------------


def floats(*addresses: int, function: int = 4) -> list[RegisterSpec]:
    return [spec(RegisterType.FLOAT32, address=a, function=function, decimals=2) for a in addresses]


def test_plan_contiguous() -> None:
    specs = floats(0x48, 0x4A, 0x4C, 0x4E)
    assert plan_reads(specs) == [ReadBlock(4, 0x48, 8, tuple(specs))]


def test_plan_order_does_not_matter() -> None:
    specs = floats(0x4E, 0x48, 0x4C, 0x4A)
    assert plan_reads(specs) == plan_reads(sorted(specs, key=lambda s: s.address))


def test_plan_gaps() -> None:
    specs = floats(0, 10, 40)  # gaps of 8 and 28 registers
    assert [(b.address, b.count) for b in plan_reads(specs, max_gap=8)] == [(0, 12), (40, 2)]
    assert [(b.address, b.count) for b in plan_reads(specs, max_gap=7)] == [(0, 2), (10, 2), (40, 2)]
    assert [(b.address, b.count) for b in plan_reads(specs, max_gap=28)] == [(0, 42)]
    assert [(b.address, b.count) for b in plan_reads(specs, max_gap=0)] == [(0, 2), (10, 2), (40, 2)]


def test_plan_splits_by_function_code() -> None:
    specs = floats(0, 2, function=3) + floats(4, 6, function=4)
    blocks = plan_reads(specs)
    assert [(b.function, b.address, b.count) for b in blocks] == [(3, 0, 4), (4, 4, 4)]


def test_plan_max_registers() -> None:
    specs = floats(*range(0, 140, 2))  # 70 float32 = 140 registers
    blocks = plan_reads(specs)
    assert [(b.address, b.count) for b in blocks] == [(0, 124), (124, 16)]
    assert all(b.count <= 125 for b in blocks)
    assert sum(len(b.specs) for b in blocks) == 70
    small = plan_reads(specs[:6], max_registers=4)
    assert [(b.address, b.count) for b in small] == [(0, 4), (4, 4), (8, 4)]


def test_plan_overlap_and_duplicates() -> None:
    a = spec(RegisterType.UINT64, address=10)
    b = spec(RegisterType.UINT16, address=11)
    blocks = plan_reads([a, b, a])
    assert [(x.address, x.count, len(x.specs)) for x in blocks] == [(10, 4, 2)]


def test_plan_refuses_impossible() -> None:
    with pytest.raises(ValueError, match="cannot be read 1 at a time"):
        plan_reads(floats(0), max_registers=1)
    with pytest.raises(ValueError, match="max_gap at least 0"):
        plan_reads(floats(0), max_gap=-1)
    assert plan_reads([]) == []


def test_read_block_slices() -> None:
    specs = floats(0, 10)
    (block,) = plan_reads(specs)
    registers = list(range(100, 112))
    assert block.registers_of(specs[1], registers) == [110, 111]
    with pytest.raises(ProtocolError, match="returned 3"):
        block.registers_of(specs[0], [1, 2, 3])
    with pytest.raises(ValueError, match="not in this read"):
        block.registers_of(floats(20)[0], registers)


# --- register maps and profiles -------------------------------------------------


def read_all(register_map: RegisterMap, store: dict[int, dict[int, int]]) -> dict[ReadBlock, list[int]]:
    """What a device holding `store` answers to each planned read (0 for unused registers)."""
    return {
        block: [store.get(block.function, {}).get(block.address + i, 0) for i in range(block.count)]
        for block in register_map.plan()
    }


READINGS = {
    0: {
        Channel.A_PLUS: 1_234_500,
        Channel.A_MINUS: 6_700,
        Channel.R_PLUS: 89_000,
        Channel.R_MINUS: 100,
    }
}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_round_trip(name: str) -> None:
    register_map = profile(name)
    store = register_map.encode_registers(READINGS)
    decoded = register_map.decode_reads(read_all(register_map, store))
    expected = {0: {c: v for c, v in READINGS[0].items() if (c, 0) in register_map.registers}}
    assert decoded == expected
    for block in register_map.plan():
        assert block.count <= register_map.max_registers


def test_profile_eastron() -> None:
    for name in ("eastron-sdm630", "eastron-sdm120"):
        register_map = profile(name)
        assert {k: (s.function, s.protocol_address) for k, s in register_map.registers.items()} == {
            (Channel.A_PLUS, 0): (4, 0x0048),
            (Channel.A_MINUS, 0): (4, 0x004A),
            (Channel.R_PLUS, 0): (4, 0x004C),
            (Channel.R_MINUS, 0): (4, 0x004E),
        }
        assert [(b.function, b.address, b.count) for b in register_map.plan()] == [(4, 0x48, 8)]
        a_plus = register_map.registers[(Channel.A_PLUS, 0)]
        assert a_plus.value_type is RegisterType.FLOAT32
        assert (a_plus.word_order, a_plus.byte_order) == (BIG, BIG)
        # 1234.5 kWh as the meter sends it: float32 0x449A5000.
        assert decode(a_plus, [0x449A, 0x5000]) == 1_234_500


def test_profile_schneider() -> None:
    register_map = profile("schneider-iem3000")
    addresses = {k: (s.address, s.base, s.protocol_address) for k, s in register_map.registers.items()}
    assert addresses == {
        (Channel.A_PLUS, 0): (3204, 1, 0x0C83),
        (Channel.A_MINUS, 0): (3208, 1, 0x0C87),
        (Channel.R_PLUS, 0): (3220, 1, 0x0C93),
        (Channel.R_MINUS, 0): (3224, 1, 0x0C97),
    }
    # One read of 24 registers spans the 8 unused registers 0x0C8B..0x0C92.
    assert [(b.function, b.address, b.count) for b in register_map.plan()] == [(3, 0x0C83, 24)]
    a_plus = register_map.registers[(Channel.A_PLUS, 0)]
    assert decode(a_plus, [0, 0, 0x0012, 0xD687]) == 1_234_567  # Int64 Wh


def test_profile_carlo_gavazzi() -> None:
    register_map = profile("carlo-gavazzi-em24")
    assert register_map.max_registers == 11
    assert [(b.function, b.address, b.count) for b in register_map.plan()] == [
        (3, 0x42, 2),
        (3, 0x5C, 2),
    ]
    assert decode(register_map.registers[(Channel.A_PLUS, 0)], [0x3039, 0x0000]) == 1_234_500


def test_unknown_profile() -> None:
    with pytest.raises(KeyError, match="known: carlo-gavazzi-em24"):
        profile("abb-b23")


def test_register_map_checks_units_and_tariffs() -> None:
    kwh = spec(RegisterType.UINT32, unit="kWh")
    with pytest.raises(ValueError, match="R\\+ cannot be in kWh"):
        RegisterMap("bad", {(Channel.R_PLUS, 0): kwh})
    with pytest.raises(ValueError, match="tariff"):
        RegisterMap("bad", {(Channel.A_PLUS, 5): kwh})


def test_register_map_tariffs_and_shared_spec() -> None:
    total = spec(RegisterType.UINT32, address=0, unit="kWh", scale="0.01")
    t1 = spec(RegisterType.UINT32, address=2, unit="kWh", scale="0.01")
    register_map = RegisterMap(
        "two-tariff",
        {(Channel.A_PLUS, 0): total, (Channel.A_PLUS, 1): t1, (Channel.A_PLUS, 2): t1},
    )
    readings = register_map.decode_reads(read_all(register_map, {3: {1: 100, 3: 40}}))
    assert readings == {
        0: {Channel.A_PLUS: 1_000},
        1: {Channel.A_PLUS: 400},
        2: {Channel.A_PLUS: 400},
    }
    with pytest.raises(TypeError):
        register_map.registers[(Channel.A_MINUS, 0)] = total  # type: ignore[index]


def test_the_catalogue_is_written_as_a_meters_own_registers() -> None:
    import tomllib
    from importlib import resources

    from amr.config import config_from_dict
    from amr.drivers.modbus.driver import register_map

    data = tomllib.loads(resources.files("amr.protocols.modbus_map").joinpath("profiles.toml").read_text("utf-8"))
    assert set(data) == set(PROFILES)
    for name, table in data.items():
        if "registers" not in table:
            continue
        config = config_from_dict({
            "buses": [{"name": "b", "kind": "modbus-tcp", "url": "tcp://127.0.0.1:502"}],
            "meters": [{"serial": "1", "bus": "b", "address": 1, "registers": table["registers"]}],
        }, {})
        assert register_map(config.meters[0], 125).registers == profile(name).registers
