// JSON schemas as Gristmill and Windmill write them for a script's parameters: an object
// with `properties`, `required` and `order`, each property a JSON schema with Windmill's
// extensions (`format: "resource-<type>"`, `contentEncoding: "base64"`, `password`, ...).
export type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  order?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  contentEncoding?: string;
  password?: boolean;
  [key: string]: unknown;
};
