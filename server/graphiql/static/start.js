// Starts GraphiQL on the page. It is a file rather than an inline <script>
// so that the page's Content-Security-Policy can allow scripts from 'self'
// only. The page passes the GraphQL endpoint in data-endpoint and the
// response's style nonce in data-style-nonce. The endpoint is relative to
// the page ("./graphql"), so that behind a proxy serving Herald under a
// path prefix it resolves inside the prefix; the socket's URL is derived
// from it below, and so stays there too.
(function () {
  'use strict';

  var root = document.getElementById('graphiql');

  // While a dialog is open GraphiQL's scroll lock (react-remove-scroll)
  // adds a <style> element, with the nonce it reads from this global
  // (webpack's name, which the get-nonce library checks), so that the
  // policy need not allow inline styles.
  window.__webpack_nonce__ = root.dataset.styleNonce;

  var endpoint = new URL(root.dataset.endpoint, document.baseURI);

  // Subscriptions go over graphql-ws (protocol graphql-transport-ws) to the
  // same URL: ws: beside http:, wss: beside https:, so the page works behind
  // TLS and on whatever host and port it was loaded from.
  var subscriptionUrl = new URL(endpoint.href);
  subscriptionUrl.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';

  // GraphiQL opens a graphql-ws client per subscription, from the copy in
  // its own bundle, with the header editor's headers as connectionParams.
  var fetcher = GraphiQL.createFetcher({
    url: endpoint.href,
    subscriptionUrl: subscriptionUrl.href
  });

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, { fetcher: fetcher })
  );
})();
