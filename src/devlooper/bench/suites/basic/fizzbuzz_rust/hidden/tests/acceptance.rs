#[test]
fn fizzbuzz_of_fifteen() {
    assert_eq!(app::fizzbuzz(15), "FizzBuzz");
    assert_eq!(app::fizzbuzz(30), "FizzBuzz");
}

#[test]
fn plain_numbers() {
    assert_eq!(app::fizzbuzz(1), "1");
}
