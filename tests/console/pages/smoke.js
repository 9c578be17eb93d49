document.getElementById("count").addEventListener("click", () => {
  const out = document.getElementById("clicks");
  out.textContent = String(Number(out.textContent) + 1);
});
