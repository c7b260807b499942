from slugify import slugify


def test_accents_are_dropped():
    assert slugify("Crème Brûlée") == "creme-brulee"


def test_runs_of_separators_become_one_hyphen():
    assert slugify("  a -- b__c  ") == "a-b-c"


def test_digits_are_kept():
    assert slugify("Top 10 Tips") == "top-10-tips"
