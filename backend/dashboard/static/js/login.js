// The login view: the same accounts as the API (POST /api/v1/auth/login).

import { logIn } from "./api.js";
import { el } from "./dom.js";
import { clearProblems, messageLine, showMessage, showProblems, textField } from "./widgets.js";

/** Show the form in `root`; `notice` explains why (session expired, logged out). */
export function mountLogin(root, { notice, onLoggedIn }) {
  const email = textField({
    label: "Email",
    name: "email",
    type: "email",
    attributes: { autocomplete: "username", required: true },
  });
  const password = textField({
    label: "Password",
    name: "password",
    type: "password",
    attributes: { autocomplete: "current-password", required: true },
  });
  const fields = { email, password };
  const noticeLine = messageLine("info");
  const formLine = messageLine("error");
  const submit = el("button", { type: "submit", class: "primary", text: "Log in" });
  const form = el("form", { class: "login-form", novalidate: true }, email.root, password.root, formLine, submit);
  showMessage(noticeLine, notice);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblems(fields, formLine);
    // said in words here: the API would answer a short email with its parser's wording
    if (!email.control.value.includes("@")) {
      const typed = email.control.value.trim();
      email.showError(typed ? "Enter a whole email address, like name@example.com." : "Enter your email address.");
      email.focus();
      return;
    }
    if (!password.control.value) {
      password.showError("Enter your password.");
      password.focus();
      return;
    }
    submit.disabled = true;
    try {
      const user = await logIn(email.control.value.trim(), password.control.value);
      onLoggedIn(user);
    } catch (error) {
      const refused = [401, 429, 503].includes(error.status);
      if (refused && error.retryAfter) error.message += ` (retry in ${error.retryAfter} s)`;
      // a wrong email or password is one message for both fields, as is "too many": above the button
      if (refused) showMessage(formLine, error.message);
      else showProblems(fields, formLine, error);
      submit.disabled = false;
    }
  });

  root.replaceChildren(
    el(
      "main",
      { class: "login", id: "main" },
      el("h1", {}, "Altar Trader Hub", el("span", { class: "subtitle", text: "Control Center" })),
      noticeLine,
      form,
      el(
        "p",
        { class: "hint" },
        "The same accounts as the API. ",
        el("a", { href: "/docs", text: "API documentation" }),
      ),
    ),
  );
  email.control.focus();
}
