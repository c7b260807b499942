from wordfreq import top_words


def test_case_and_punctuation_are_ignored():
    assert top_words("The cat. the CAT, the dog!", 2) == [("the", 3), ("cat", 2)]


def test_ties_are_alphabetical():
    assert top_words("b a c b a c", 3) == [("a", 2), ("b", 2), ("c", 2)]
