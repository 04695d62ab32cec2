//! The GraphiQL page served at `GET /graphql`. The page loads GraphiQL from a public CDN in
//! the browser; the server itself needs no network.

pub fn page(endpoint: &str) -> String {
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>arcbase playground</title>
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3.8.3/graphiql.min.css">
  <style>body {{ margin: 0; height: 100vh; }} #graphiql {{ height: 100vh; }}</style>
</head>
<body>
  <div id="graphiql">Loading the playground...</div>
  <script crossorigin src="https://unpkg.com/react@18.3.1/umd/react.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphiql@3.8.3/graphiql.min.js"></script>
  <script>
    const headers = JSON.parse(localStorage.getItem("arcbase-headers") || "{{}}");
    const fetcher = GraphiQL.createFetcher({{
      url: "{endpoint}",
      headers,
      // Subscriptions over WebSocket (graphql-transport-ws) at the same path.
      subscriptionUrl: (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "{endpoint}",
      wsConnectionParams: headers,
    }});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{ fetcher, defaultEditorToolsVisibility: true }})
    );
  </script>
</body>
</html>"##
    )
}
