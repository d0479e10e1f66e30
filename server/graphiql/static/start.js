// Starts GraphiQL on the page. It is a file rather than an inline <script>
// so that the page's Content-Security-Policy can allow scripts from 'self'
// only. The page passes the GraphQL endpoint in data-endpoint.
(function () {
  'use strict';

  var root = document.getElementById('graphiql');
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
