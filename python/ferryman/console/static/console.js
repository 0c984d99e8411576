// Asks before a form that changes what devices get is sent (forms carry data-confirm).
// Pages work without this file: it only adds the question.
document.addEventListener("submit", (event) => {
  const question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
