// The console works without this file; it adds two things.
// 1. A question before a form that changes what devices get is sent (forms with data-confirm).
document.addEventListener("submit", (event) => {
  const question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// 2. Live figures: an element with an id and data-refresh="SECONDS" is replaced, that often,
// by the element of the same id in a fresh copy of the page (nothing else on the page moves).
for (const element of document.querySelectorAll("[data-refresh][id]")) {
  const seconds = Math.max(2, Number(element.getAttribute("data-refresh")) || 10);
  const refresh = async () => {
    try {
      const answer = await fetch(window.location.href, { credentials: "same-origin" });
      if (!answer.ok) return;
      const page = new DOMParser().parseFromString(await answer.text(), "text/html");
      const fresh = page.getElementById(element.id);
      const current = document.getElementById(element.id);
      if (fresh && current) current.replaceWith(fresh);
    } catch (error) {
      // A server restarting or a network blip: the next tick tries again.
    }
  };
  window.setInterval(refresh, seconds * 1000);
}
