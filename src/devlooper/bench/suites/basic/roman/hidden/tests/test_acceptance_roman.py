import pytest

from roman import to_roman


def test_simple_numerals():
    assert to_roman(3) == "III"
    assert to_roman(2023) == "MMXXIII"


def test_subtractive_notation():
    assert to_roman(4) == "IV"
    assert to_roman(1994) == "MCMXCIV"


def test_out_of_range():
    with pytest.raises(ValueError):
        to_roman(0)
