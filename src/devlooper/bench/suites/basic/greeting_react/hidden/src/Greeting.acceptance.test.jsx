import { render, screen } from "@testing-library/react";
import Greeting from "./Greeting";

test("greets by name", () => {
  render(<Greeting name="Ada" />);
  expect(screen.getByText("Hello, Ada!")).toBeInTheDocument();
});

test("greets a stranger without a name", () => {
  render(<Greeting />);
  expect(screen.getByText("Hello, stranger!")).toBeInTheDocument();
});
