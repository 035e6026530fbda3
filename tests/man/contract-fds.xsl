<?xml version="1.0"?>
<!-- SPDX-License-Identifier: LGPL-2.1-or-later -->
<!-- The methods of a D-Bus introspection file that pass file descriptors
     (an argument type with an h in it), one "INTERFACE NAME" a line. -->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text" encoding="UTF-8"/>

  <xsl:template match="/">
    <xsl:for-each select="/node/interface/method[arg[contains(@type, 'h')]]">
      <xsl:value-of select="concat(../@name, ' ', @name, '&#10;')"/>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>
