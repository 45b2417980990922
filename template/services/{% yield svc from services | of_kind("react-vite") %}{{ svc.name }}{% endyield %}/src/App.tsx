export function App() {
  return (
    <main>
      <h1>{document.title}</h1>
    </main>
  );
}
